/*
 * emu_fiber.cpp - the register switch behind the emulator's fibers.
 */
#include "emu_fiber.h"

#include <stdint.h>

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers are written for x86-64"
#endif

/* rdi = where to save this stack pointer, rsi = the stack pointer to resume. */
asm(".text\n"
	".globl groma_emu_switch\n"
	".type groma_emu_switch,@function\n"
	"groma_emu_switch:\n"
	"	pushq %rbp\n"
	"	pushq %rbx\n"
	"	pushq %r12\n"
	"	pushq %r13\n"
	"	pushq %r14\n"
	"	pushq %r15\n"
	"	movq %rsp, (%rdi)\n"
	"	movq %rsi, %rsp\n"
	"	popq %r15\n"
	"	popq %r14\n"
	"	popq %r13\n"
	"	popq %r12\n"
	"	popq %rbx\n"
	"	popq %rbp\n"
	"	ret\n"
	".size groma_emu_switch, .-groma_emu_switch\n"
	/* first instruction of a new fiber: r12 holds entry; call it from a 16-byte aligned stack */
	".globl groma_emu_fiber_start\n"
	".type groma_emu_fiber_start,@function\n"
	"groma_emu_fiber_start:\n"
	"	callq *%r12\n"
	"	ud2\n"
	".size groma_emu_fiber_start, .-groma_emu_fiber_start\n");

extern "C" void groma_emu_fiber_start(void);

/* Lays out the frame groma_emu_switch pops: six registers (r12 = entry), then the start address. */
void *
groma_emu_fiber_stack(char *base, size_t size, void (*entry) (void))
{
	uintptr_t	top = ((uintptr_t) (base + size)) & ~(uintptr_t) 15;
	void	  **sp = (void **) top;

	*--sp = (void *) groma_emu_fiber_start;
	*--sp = NULL;				/* rbp */
	*--sp = NULL;				/* rbx */
	*--sp = (void *) entry;		/* r12 */
	*--sp = NULL;				/* r13 */
	*--sp = NULL;				/* r14 */
	*--sp = NULL;				/* r15 */
	return sp;
}
