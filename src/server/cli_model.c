/*
 * cli_model.c - loading the model and its working memory for one command,
 * on the CPU or the GPU (--device).
 */
#include <string.h>

#include "cli.h"

#ifdef GROMA_WITH_CUDA
#include "../../kernels/groma_cuda.h"
#endif

/* Makes the CUDA backend current, or says why it cannot be. */
static groma_status
use_cuda(void)
{
#ifdef GROMA_WITH_CUDA
	return groma_cuda_register();
#else
	return groma_error(GROMA_ERR_UNSUPPORTED, "this groma-server was built without CUDA");
#endif
}

/* Opens a session; see cli.h. */
groma_status
groma_cli_session_open(const groma_cli_options *opt, size_t act_bytes, groma_cli_session *s)
{
	bool		cuda = strcmp(opt->device, "cuda") == 0;
	groma_device device = cuda ? GROMA_DEVICE_CUDA : GROMA_DEVICE_CPU;

	memset(s, 0, sizeof(*s));
	if (cuda)
		GROMA_TRY(use_cuda());
	GROMA_TRY(groma_model_load_on(opt->model_dir, device, &s->model));
	if (cuda)
	{
		GROMA_TRY(groma_device_arena_init(&s->act, act_bytes));
		GROMA_TRY(groma_device_arena_init(&s->out, (size_t) 64 << 20));
	}
	else
	{
		GROMA_TRY(groma_arena_init(&s->act, act_bytes));
		GROMA_TRY(groma_arena_init(&s->out, (size_t) 64 << 20));
	}
	return groma_arena_init(&s->host, (size_t) 16 << 20);
}

/* Closes a session; see cli.h. */
void
groma_cli_session_close(groma_cli_session *s)
{
	groma_arena_free(&s->act);
	groma_arena_free(&s->out);
	groma_arena_free(&s->host);
	groma_model_free(s->model);
	memset(s, 0, sizeof(*s));
}
