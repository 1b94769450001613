/*
 * emu_fiber.h - minimal fibers for the CUDA emulator: a saved stack
 * pointer per fiber and a switch that saves the callee-saved registers
 * (x86-64 System V only).
 */
#ifndef GROMA_EMU_FIBER_H
#define GROMA_EMU_FIBER_H

#include <stddef.h>

/* Saves the current registers and stack pointer into *save and resumes the fiber whose stack pointer is next. */
extern "C" void groma_emu_switch(void **save, void *next);

/* Prepares a stack [base, base + size) so that switching to the returned pointer calls entry(). */
void	   *groma_emu_fiber_stack(char *base, size_t size, void (*entry) (void));

#endif							/* GROMA_EMU_FIBER_H */
