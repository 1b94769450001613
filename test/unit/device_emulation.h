/*
 * device_emulation.h - an accelerator backend for tests on machines without
 * one: "device" memory is host memory kept inaccessible (PROT_NONE) except
 * while a device entry point runs, and every op runs the CPU twin.  Code
 * that reads or writes a device tensor's data directly, instead of through
 * an op or a transfer, faults at once.  Entry points refuse what the CUDA
 * backend refuses (strided fills and host/device copies, explicit rope
 * positions, adaptive RoIAlign sampling, ...), so CPU-only CI catches model
 * code the GPU would reject.
 */
#ifndef GROMA_DEVICE_EMULATION_H
#define GROMA_DEVICE_EMULATION_H

#include <stdbool.h>

/* Installs the emulated backend in groma_cuda_ops (saving what was there). */
void		device_emulation_install(void);

/* Restores the saved table; frees nothing (the caller frees its arenas first). */
void		device_emulation_remove(void);

/* Makes all emulated device memory accessible (open) or not again (close); nests. */
void		device_emulation_open(void);
void		device_emulation_close(void);

/* Number of entry points called since install (transfers and ops). */
long		device_emulation_calls(void);

/* Number of host-to-device and device-to-host copies since the process started. */
long		device_emulation_transfers(void);

#endif							/* GROMA_DEVICE_EMULATION_H */
