/* cuda_fp16.h - the CPU emulator stands in for the CUDA header of this name. */
#include "../emu_cuda.h"
