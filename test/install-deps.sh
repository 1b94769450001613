#!/usr/bin/env bash
# test/install-deps.sh - install every Debian 12 package groma builds and tests with.
# Run as root (or with sudo).  The last line of packages is what Citus needs
# to build (test/run.sh builds it for the scale-out test).  CUDA is optional: when /usr/local/cuda/bin/nvcc
# exists the default build also compiles the CUDA kernels.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    make gcc g++ perl ca-certificates coreutils util-linux binutils \
    postgresql-15 postgresql-server-dev-15 postgresql-client-15 \
    libturbojpeg0-dev libjpeg62-turbo-dev libopenblas-dev libjansson-dev \
    clang libclang-rt-14-dev libipc-run-perl \
    liblz4-dev libzstd-dev libkrb5-dev libssl-dev libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev \
    >/dev/null
echo "groma: build and test dependencies installed"
