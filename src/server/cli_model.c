/*
 * cli_model.c - loading the model and its working memory for one command,
 * on the CPU or the GPU (--device).
 */
#include <string.h>

#include "cli.h"

#ifdef GROMA_WITH_CUDA
#include "../../kernels/groma_cuda.h"
#endif

/* Makes a device usable; see cli.h. */
groma_status
groma_cli_use_device(const char *name, groma_device *device)
{
	*device = GROMA_DEVICE_CPU;
	if (strcmp(name, "cpu") == 0)
		return groma_ok();
	if (strcmp(name, "cuda") != 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "unknown device \"%s\" (cpu or cuda)", name);
#ifdef GROMA_WITH_CUDA
	*device = GROMA_DEVICE_CUDA;
	return groma_cuda_register();
#else
	return groma_error(GROMA_ERR_UNSUPPORTED, "this groma-server was built without CUDA");
#endif
}

/* The matrices' dtype; see cli.h. */
groma_status
groma_cli_weight_dtype(const groma_cli_options *opt, groma_device device, groma_dtype *dtype)
{
	const char *w = opt->weights ? opt->weights : device == GROMA_DEVICE_CUDA ? "bf16" : "f32";

	if (strcmp(w, "f32") == 0)
		*dtype = GROMA_F32;
	else if (strcmp(w, "bf16") == 0)
		*dtype = GROMA_BF16;
	else if (strcmp(w, "f16") == 0)
		*dtype = GROMA_F16;
	else if (strcmp(w, "int8") == 0)
		*dtype = GROMA_I8;
	else
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "--weights %s: f32, bf16, f16 or int8", w);
	return groma_ok();
}

/* Opens a session; see cli.h. */
groma_status
groma_cli_session_open(const groma_cli_options *opt, size_t act_bytes, groma_cli_session *s)
{
	groma_device device;
	groma_dtype matrices;
	groma_status st;

	memset(s, 0, sizeof(*s));
	GROMA_TRY(groma_cli_use_device(opt->device, &device));
	GROMA_TRY(groma_cli_weight_dtype(opt, device, &matrices));
	if (opt->random_weights)
	{
		/* a model of the configured size with random weights (benchmarks); the directory gives the tokenizer */
		groma_model_config cfg;

		if (strcmp(opt->config, "real") == 0)
			GROMA_TRY(groma_model_config_real(&cfg));
		else
			GROMA_TRY(groma_model_config_load(opt->config, &cfg));
		GROMA_TRY(groma_model_random(&cfg, device, matrices, &s->model));
	}
	else
		GROMA_TRY(groma_model_load_on(opt->model_dir, device, matrices, &s->model));
	st = groma_arena_init_on(&s->act, device, act_bytes);
	if (st.code != GROMA_OK)
		return groma_error(st.code, "the activation arena of %zu MB (--act-mb) cannot be allocated: %s",
						   act_bytes >> 20, st.message);
	GROMA_TRY(groma_arena_init_on(&s->out, device, (size_t) 64 << 20));
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
