# groma - PostgreSQL extension and groma-server, built with PGXS.
#
#   make                      groma.so + groma-server (CUDA kernels when nvcc is found)
#   make GROMA_CUDA=0         CPU-only build, no CUDA symbols anywhere
#   make install              extension files, groma.so, groma-server into pg_config's dirs
#   make unit-tests           C unit tests under ASan/UBSan (build/unit/groma-unit-tests)
#   make fuzz                 libFuzzer targets (clang)  -> build/fuzz/
#   make test                 everything, against a throwaway cluster (test/run.sh)

EXTENSION = groma
DATA = sql/groma--0.1.sql
REGRESS = image_info image_bad_input
PG_CONFIG ?= pg_config

# Library code shared by groma.so, groma-server and the tests (no PostgreSQL headers).
IMAGE_SRCS = src/runtime/status.c src/image/jpeg_markers.c src/image/jpeg_decode.c \
	src/image/resize_bicubic.c src/image/preprocess.c
IO_SRCS = src/io/safetensors.c
SERVER_SRCS = src/server/groma_server.c src/server/cli_decode.c src/server/device_info.c
PG_SRCS = src/pg/groma_init.c src/pg/groma_errors.c src/pg/image_functions.c

MODULE_big = groma
OBJS = $(PG_SRCS:.c=.o) $(IMAGE_SRCS:.c=.o)
SHLIB_LINK = -lturbojpeg
PG_CFLAGS = -std=gnu11 -Wno-declaration-after-statement
EXTRA_CLEAN = groma-server build kernels/*.o src/server/*.o src/io/*.o results regression.diffs regression.out

# ---- CUDA detection -------------------------------------------------------
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(shell command -v nvcc 2>/dev/null || { test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc; })
ifeq ($(origin GROMA_CUDA),undefined)
  GROMA_CUDA := $(if $(NVCC),1,0)
endif
CUDA_SRCS = $(wildcard kernels/*.cu)
ifeq ($(GROMA_CUDA),1)
  CUDA_OBJS = $(CUDA_SRCS:.cu=.o)
  CUDA_DEFS = -DGROMA_WITH_CUDA=1
  # cudart is linked statically so a carried binary needs only libcublas at run time.
  CUDA_LIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart_static -ldl -lrt -lpthread
  NVCC_FLAGS ?= -O2 -std=c++17 -Xcompiler -fPIC -I$(CUDA_HOME)/include \
	-gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
else
  CUDA_OBJS =
  CUDA_DEFS =
  CUDA_LIBS =
endif

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

SERVER_CFLAGS = -O2 -g -fPIC -std=gnu11 -Wall -Wextra -Wno-unused-parameter $(CUDA_DEFS)
SERVER_LIBS = -lturbojpeg -ljansson -lm $(CUDA_LIBS)
LIB_OBJS = $(patsubst %.c,build/server/%.o,$(IMAGE_SRCS) $(IO_SRCS))

all: groma-server

build/server/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SERVER_CFLAGS) -I$(CUDA_HOME)/include -c $< -o $@

kernels/%.o: kernels/%.cu kernels/groma_cuda.h
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

groma-server: $(patsubst %.c,build/server/%.o,$(SERVER_SRCS)) $(LIB_OBJS) $(CUDA_OBJS)
	$(CXX) -o $@ $^ $(SERVER_LIBS)

install: install-server
install-server: groma-server
	$(INSTALL_PROGRAM) groma-server '$(DESTDIR)$(bindir)/groma-server'

# ---- tests ------------------------------------------------------------------
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
UNIT_CFLAGS = -std=gnu11 -g -O1 -Wall -Wextra -Wno-unused-parameter $(SAN_FLAGS) $(CUDA_DEFS)
UNIT_SRCS = $(wildcard test/unit/*.c)

build/unit/groma-unit-tests: $(UNIT_SRCS) $(IMAGE_SRCS) $(IO_SRCS) $(wildcard test/unit/*.h src/*/*.h)
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $(UNIT_SRCS) $(IMAGE_SRCS) $(IO_SRCS) -lturbojpeg -ljansson -lm

unit-tests: build/unit/groma-unit-tests

# GPU parity test: built only with CUDA; skips with a reason where no GPU is present.
build/gpu/test-preprocess-cuda: test/gpu/test_preprocess_cuda.c $(LIB_OBJS) $(CUDA_OBJS)
	@mkdir -p build/gpu
	$(CXX) -x c -std=gnu11 $(SERVER_CFLAGS) -c test/gpu/test_preprocess_cuda.c -o build/gpu/test_preprocess_cuda.o
	$(CXX) -o $@ build/gpu/test_preprocess_cuda.o $(LIB_OBJS) $(CUDA_OBJS) $(SERVER_LIBS)

gpu-tests: $(if $(filter 1,$(GROMA_CUDA)),build/gpu/test-preprocess-cuda)

FUZZ_CC ?= clang
# Decoding is instrumented for coverage; the resize arithmetic only for ASan/UBSan
# (coverage hooks in its inner loops would cut the fuzzer's speed tenfold).
FUZZ_PLAIN_SRCS = src/image/resize_bicubic.c src/image/preprocess.c
build/fuzz/fuzz-jpeg-decode: test/fuzz/fuzz_jpeg_decode.c $(filter-out $(FUZZ_PLAIN_SRCS),$(IMAGE_SRCS)) $(FUZZ_PLAIN_SRCS)
	@mkdir -p build/fuzz
	$(FUZZ_CC) -g -O1 -fsanitize=address,undefined -c src/image/resize_bicubic.c -o build/fuzz/resize_bicubic.o
	$(FUZZ_CC) -g -O1 -fsanitize=address,undefined -c src/image/preprocess.c -o build/fuzz/preprocess.o
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -o $@ test/fuzz/fuzz_jpeg_decode.c \
		$(filter-out $(FUZZ_PLAIN_SRCS),$(IMAGE_SRCS)) build/fuzz/resize_bicubic.o build/fuzz/preprocess.o -lturbojpeg -lm

fuzz: build/fuzz/fuzz-jpeg-decode

# A self-contained copy of the GPU binaries and the Debian .so files they need, for
# machines without the packages (see test/device/run.sh).  carry/ is git-ignored.
device-bundle: groma-server gpu-tests
	rm -rf carry && mkdir -p carry/bin carry/lib
	cp groma-server build/gpu/test-preprocess-cuda carry/bin/
	for lib in libturbojpeg.so.0 libjansson.so.4; do \
		cp -L "$$(ldconfig -p | awk -v l=$$lib '$$1 == l {print $$NF; exit}')" carry/lib/; done

test:
	test/run.sh

.PHONY: install-server unit-tests gpu-tests fuzz test device-bundle
