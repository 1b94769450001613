# groma - PostgreSQL extension and groma-server, built with PGXS.
#
#   make                      groma.so + groma-server (CUDA kernels when nvcc is found)
#   make GROMA_CUDA=0         CPU-only build, no CUDA symbols anywhere
#   make install              extension files, groma.so, groma-server into pg_config's dirs
#   make unit-tests           C unit tests under ASan/UBSan (build/unit/groma-unit-tests)
#   make fuzz                 libFuzzer targets (clang)  -> build/fuzz/fuzz_*
#   make bench                benchmarks (print figures) -> build/bench/bench_*
#   make emu                  the GPU tests and groma-server on the CPU CUDA emulator -> build/emu/
#   make test                 everything, against a throwaway cluster (test/run.sh)

EXTENSION = groma
DATA = sql/groma--0.1.sql
REGRESS = image_info image_bad_input server_functions model_bad_input draw model_functions
PG_CONFIG ?= pg_config

# Library code (no PostgreSQL headers).  Files named *_main.c are program
# entry points and stay out of the library.  groma.so links only what the
# backend needs (image decoding, the check of a user's box); groma-server and the
# tests link everything.
# The protocol's encoder/decoder is linked into both sides (and the tests).
PROTO_SRCS = src/server/protocol.c
PG_LIB_SRCS = src/runtime/status.c src/runtime/cancel.c $(wildcard src/image/*.c) src/model/refer_box.c $(PROTO_SRCS)
LIB_SRCS = $(filter-out %_main.c,$(wildcard src/runtime/*.c src/image/*.c src/io/*.c src/model/*.c src/text/*.c)) \
	$(PROTO_SRCS)
SERVER_SRCS = $(filter-out $(PROTO_SRCS),$(wildcard src/server/*.c))
PG_SRCS = $(wildcard src/pg/*.c)
# Extra programs: groma-convert once src/io/convert_main.c exists.
PROGRAMS = groma-server $(if $(wildcard src/io/convert_main.c),groma-convert)

MODULE_big = groma
OBJS = $(PG_SRCS:.c=.o) $(PG_LIB_SRCS:.c=.o)
SHLIB_LINK = -lturbojpeg -ljpeg
PG_CFLAGS = -std=gnu11 -Wno-declaration-after-statement
EXTRA_CLEAN = groma-server groma-convert build kernels/*.o results regression.diffs regression.out

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
  NVCC_FLAGS ?= -O2 -std=c++17 -lineinfo -Xcompiler -fPIC -I$(CUDA_HOME)/include \
	-gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
else
  CUDA_OBJS =
  CUDA_DEFS =
  CUDA_LIBS =
endif

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track headers: groma.so's objects are rebuilt when any of
# groma's headers changes (a stale struct layout, e.g. of a protocol
# request, would corrupt a backend's stack).
$(OBJS): $(wildcard src/*/*.h)

SERVER_CFLAGS = -O2 -g -fPIC -std=gnu11 -Wall -Wextra -Wno-unused-parameter $(CUDA_DEFS)
SERVER_LIBS = -lturbojpeg -ljpeg -ljansson -lopenblas -lpthread -lm $(CUDA_LIBS)
LIB_OBJS = $(patsubst %.c,build/server/%.o,$(LIB_SRCS))

all: $(PROGRAMS)

# -MMD: objects are rebuilt when a header they include changes.
build/server/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SERVER_CFLAGS) -MMD -MP -I$(CUDA_HOME)/include -c $< -o $@

# The CPU op loops are written to be vectorised: -O3, and -fno-trapping-math so selects
# become blends (no fast-math: rounding is unchanged).  -ffp-contract=off: no FMA
# contraction on hosts that have FMA, so the CPU twins round like the GPU kernels
# built with -fmad=false.
CPU_OP_FLAGS = -O3 -fno-trapping-math -ffp-contract=off
$(patsubst %.c,build/server/%.o,$(wildcard src/runtime/op_*_cpu.c)): SERVER_CFLAGS += $(CPU_OP_FLAGS)

-include $(shell find build/server -name '*.d' 2>/dev/null)

kernels/%.o: kernels/%.cu kernels/groma_cuda.h kernels/cuda_common.h $(wildcard src/runtime/*.h)
	$(NVCC) $(NVCC_FLAGS) $(NVCC_EXTRA_$(notdir $*)) -c $< -o $@

# The spatial kernels round like their CPU twins (built without FMA): no contraction,
# explicit fmaf where the CPU has one.
NVCC_EXTRA_ops_spatial = -fmad=false

groma-server: $(patsubst %.c,build/server/%.o,$(SERVER_SRCS)) $(LIB_OBJS) $(CUDA_OBJS)
	$(CXX) -o $@ $^ $(SERVER_LIBS)

groma-convert: build/server/src/io/convert_main.o $(LIB_OBJS) $(CUDA_OBJS)
	$(CXX) -o $@ $^ $(SERVER_LIBS)

install: install-server
install-server: $(PROGRAMS)
	for p in $(PROGRAMS); do $(INSTALL_PROGRAM) $$p '$(DESTDIR)$(bindir)/'$$p; done

# ---- tests ------------------------------------------------------------------
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
UNIT_CFLAGS = -std=gnu11 -g -O1 -Wall -Wextra -Wno-unused-parameter $(SAN_FLAGS) $(CUDA_DEFS)
UNIT_SRCS = $(wildcard test/unit/*.c)
TEST_LIBS = -lturbojpeg -ljpeg -ljansson -lopenblas -lpthread -lm

# UNIT_BIN lets several people build the test binary side by side.
UNIT_BIN ?= build/unit/groma-unit-tests
$(UNIT_BIN): $(UNIT_SRCS) $(LIB_SRCS) $(wildcard test/unit/*.h src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(UNIT_CFLAGS) -o $@ $(UNIT_SRCS) $(LIB_SRCS) $(TEST_LIBS)

unit-tests: $(UNIT_BIN)

# GPU parity tests (test/gpu/test_*.c): built only with CUDA; they skip with a reason where no GPU is present.
GPU_TESTS = $(patsubst test/gpu/%.c,build/gpu/%,$(wildcard test/gpu/test_*.c))
build/gpu/%: test/gpu/%.c $(LIB_OBJS) $(CUDA_OBJS)
	@mkdir -p build/gpu
	$(CC) $(SERVER_CFLAGS) -c $< -o $@.o
	$(CXX) -o $@ $@.o $(LIB_OBJS) $(CUDA_OBJS) $(SERVER_LIBS)

# test_golden_cuda runs the unit tests' golden comparisons (test/unit) on a GPU model: it links them.
GOLDEN_PARITY_SRCS = test/unit/unit.c test/unit/golden_case.c test/unit/test_vision_parity.c test/unit/test_llm_parity.c \
	test/unit/test_decode_batch.c
build/gpu/test_golden_cuda: test/gpu/test_golden_cuda.c $(GOLDEN_PARITY_SRCS) $(wildcard test/unit/*.h) $(LIB_OBJS) \
		$(CUDA_OBJS)
	@mkdir -p build/gpu/golden
	for s in $< $(GOLDEN_PARITY_SRCS); do \
		$(CC) $(SERVER_CFLAGS) -c $$s -o build/gpu/golden/$$(basename $$s .c).o || exit 1; done
	$(CXX) -o $@ build/gpu/golden/*.o $(LIB_OBJS) $(CUDA_OBJS) $(SERVER_LIBS)

gpu-tests: $(if $(filter 1,$(GROMA_CUDA)),$(GPU_TESTS))

# The CUDA emulator (test/emu): kernels/*.cu compiled by g++ against emulated CUDA and
# cuBLAS headers, run on the CPU, so the GPU tests and groma-server --device cuda run
# here.  The only rewrite is the launch syntax.  Built with or without nvcc.
# the C sources as the CUDA build compiles them, with the emulated headers
EMU_CFLAGS = $(filter-out -DGROMA_WITH_CUDA=1,$(SERVER_CFLAGS)) -DGROMA_WITH_CUDA=1 -Itest/emu/include
EMU_CXXFLAGS = -std=c++17 -O2 -g -fPIC -ffp-contract=off -Wall -Wno-unused-function -Wno-unknown-pragmas \
	-Itest/emu/include -Ikernels
EMU_KERNEL_OBJS = $(patsubst kernels/%.cu,build/emu/kernels/%.o,$(CUDA_SRCS))
EMU_RUNTIME_OBJS = $(patsubst test/emu/%.cpp,build/emu/runtime/%.o,$(wildcard test/emu/*.cpp))
EMU_LIB_OBJS = $(patsubst %.c,build/emu/obj/%.o,$(LIB_SRCS))
EMU_TESTS = $(patsubst test/gpu/%.c,build/emu/%,$(wildcard test/gpu/test_*.c))
EMU_HEADERS = $(wildcard test/emu/*.h test/emu/include/*.h)
# k<<<grid, block, shmem, stream>>>(args) -> groma_emu_launch(k, "k", grid, block, shmem, stream)(args), across lines
EMU_REWRITE = perl -0pe 's/([A-Za-z_][A-Za-z_0-9]*)<<<(.*?)>>>\(/groma_emu_launch($$1, "$$1", $$2)(/gs'

build/emu/kernels/%.cpp: kernels/%.cu Makefile
	@mkdir -p $(dir $@)
	$(EMU_REWRITE) $< > $@

build/emu/kernels/%.o: build/emu/kernels/%.cpp kernels/groma_cuda.h kernels/cuda_common.h $(EMU_HEADERS) $(wildcard src/runtime/*.h)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

build/emu/runtime/%.o: test/emu/%.cpp $(EMU_HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

build/emu/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -MMD -MP -c $< -o $@

$(patsubst %.c,build/emu/obj/%.o,$(wildcard src/runtime/op_*_cpu.c)): SERVER_CFLAGS += $(CPU_OP_FLAGS)

-include $(shell find build/emu/obj -name '*.d' 2>/dev/null)

EMU_LINK = $(EMU_LIB_OBJS) $(EMU_KERNEL_OBJS) $(EMU_RUNTIME_OBJS)

build/emu/test_%: test/gpu/test_%.c $(EMU_LINK)
	$(CC) $(EMU_CFLAGS) -c $< -o $@.o
	$(CXX) -o $@ $@.o $(EMU_LINK) -lturbojpeg -ljpeg -ljansson -lopenblas -lpthread -lm

build/emu/test_golden_cuda: test/gpu/test_golden_cuda.c $(GOLDEN_PARITY_SRCS) $(wildcard test/unit/*.h) $(EMU_LINK)
	@mkdir -p build/emu/golden
	for s in $< $(GOLDEN_PARITY_SRCS); do \
		$(CC) $(EMU_CFLAGS) -c $$s -o build/emu/golden/$$(basename $$s .c).o || exit 1; done
	$(CXX) -o $@ build/emu/golden/*.o $(EMU_LINK) -lturbojpeg -ljpeg -ljansson -lopenblas -lpthread -lm

build/emu/test_emulator.cpp: test/emu/test_emulator.cu Makefile
	@mkdir -p $(dir $@)
	$(EMU_REWRITE) $< > $@

build/emu/test_emulator: build/emu/test_emulator.cpp $(EMU_RUNTIME_OBJS)
	$(CXX) $(EMU_CXXFLAGS) -Itest/emu -o $@ $< $(EMU_RUNTIME_OBJS) -lopenblas -lpthread

build/emu/groma-server: $(patsubst %.c,build/emu/obj/%.o,$(SERVER_SRCS)) $(EMU_LINK)
	$(CXX) -o $@ $^ -lturbojpeg -ljpeg -ljansson -lopenblas -lpthread -lm

emu: $(EMU_TESTS) build/emu/test_emulator build/emu/groma-server

# A rehearsal of test/device/run.sh on the emulator (no GPU):
#   make emu-bundle && GROMA_DEVICE_BUNDLE=build/emu-bundle bash test/device/run.sh
emu-bundle: emu
	rm -rf build/emu-bundle && mkdir -p build/emu-bundle/bin build/emu-bundle/lib
	cp build/emu/groma-server $(EMU_TESTS) build/emu/test_emulator build/emu-bundle/bin/

FUZZ_CC ?= clang
# Each test/fuzz/fuzz_NAME.c is a libFuzzer target build/fuzz/fuzz_NAME.  Parsing code
# is instrumented for coverage; arithmetic kernels (resize, runtime ops) only for
# ASan/UBSan, since coverage hooks in their inner loops cut fuzzing speed tenfold.
FUZZ_TARGETS = $(patsubst test/fuzz/%.c,build/fuzz/%,$(wildcard test/fuzz/fuzz_*.c))
FUZZ_PLAIN_SRCS = src/image/resize_bicubic.c src/image/preprocess.c $(filter-out src/runtime/status.c,$(wildcard src/runtime/*.c))
FUZZ_COV_SRCS = $(filter-out $(FUZZ_PLAIN_SRCS),$(LIB_SRCS))
FUZZ_PLAIN_OBJS = $(patsubst %.c,build/fuzz/obj/%.o,$(FUZZ_PLAIN_SRCS))

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -fsanitize=address,undefined -c $< -o $@

build/fuzz/%: test/fuzz/%.c $(FUZZ_COV_SRCS) $(FUZZ_PLAIN_OBJS)
	@mkdir -p build/fuzz
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_COV_SRCS) $(FUZZ_PLAIN_OBJS) $(TEST_LIBS)

fuzz: $(FUZZ_TARGETS)

# A self-contained copy of the GPU binaries and the Debian .so files they need, for
# machines without the packages (see test/device/run.sh).  carry/ is git-ignored.
# The Debian libraries the binaries need (OpenBLAS and its Fortran runtime included),
# xz-compressed to keep the carried tree small; test/device/run.sh unpacks them.
BUNDLE_LIBS = libturbojpeg.so.0 libjpeg.so.62 libjansson.so.4 libopenblas.so.0 libgfortran.so.5 libquadmath.so.0
device-bundle: groma-server gpu-tests
	rm -rf carry && mkdir -p carry/bin carry/lib
	cp groma-server $(GPU_TESTS) carry/bin/
	for lib in $(BUNDLE_LIBS); do \
		xz -6 -T0 -c "$$(ldconfig -p | awk -v l=$$lib '$$1 == l {print $$NF; exit}')" > carry/lib/$$lib.xz || exit 1; done
	# the PyTorch baseline, run beside groma's figures on the device, where the shared folder exists
	[ ! -f ../shared/bench/torch_baseline.py ] || cp ../shared/bench/torch_baseline.py carry/

# Each test/bench/bench_NAME.c is a benchmark program build/bench/bench_NAME (-O3, no sanitizers).
BENCH_TARGETS = $(patsubst test/bench/%.c,build/bench/%,$(wildcard test/bench/bench_*.c))
build/bench/%: test/bench/%.c $(LIB_OBJS)
	@mkdir -p build/bench
	$(CC) $(SERVER_CFLAGS) -o $@ $< $(LIB_OBJS) $(TEST_LIBS)

bench: $(BENCH_TARGETS)

test:
	test/run.sh

.PHONY: emu emu-bundle install-server unit-tests gpu-tests fuzz bench test device-bundle
