#!/usr/bin/env bash
# test/install-deps.sh - install every Debian 12 package groma builds and tests with.
# Run as root (or with sudo).  CUDA is optional: when /usr/local/cuda/bin/nvcc
# exists the default build also compiles the CUDA kernels.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    make gcc g++ perl ca-certificates coreutils util-linux binutils \
    postgresql-15 postgresql-server-dev-15 postgresql-client-15 \
    libturbojpeg0-dev libjpeg62-turbo-dev libopenblas-dev libjansson-dev \
    clang libclang-rt-14-dev libipc-run-perl >/dev/null
echo "groma: build and test dependencies installed"
