/*
 * test_model_on_device.c - the whole model with its weights and activations
 * in (emulated) device memory: every access goes through an op or a
 * transfer, or the test faults.  Runs on any machine; see
 * device_emulation.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "device_emulation.h"
#include "golden_case.h"
#include "../../src/model/generate.h"
#include "../../src/runtime/device_ops.h"
#include "../../src/runtime/ops.h"

/* Writes into emulated device memory from a child; returns true when the child died instead of finishing. */
static bool
direct_write_faults(bool opened)
{
	pid_t		pid;
	int			status = 0;

	fflush(NULL);
	pid = fork();
	if (pid == 0)
	{
		groma_arena a;

		if (groma_device_arena_init(&a, 4096).code != GROMA_OK)
			_exit(3);
		if (opened)
			device_emulation_open();
		else
		{
			fprintf(stderr, "# expected below: an AddressSanitizer SEGV report from a child process that writes\n"
					"# into protected emulated device memory on purpose (the test passes when it dies)\n");
			fflush(stderr);
		}
		((volatile float *) a.base)[0] = 1.0f;	/* what model code must never do */
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return false;
	return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The emulation really catches direct access: a write faults unless memory is opened. */
UNIT_TEST(test_device_emulation_catches_direct_access)
{
	device_emulation_install();
	CHECKF(direct_write_faults(false), "a direct write into emulated device memory did not fault");
	CHECKF(!direct_write_faults(true), "a write into opened emulated device memory faulted");
	device_emulation_remove();
}

/* Max |a - b| over n floats. */
static double
max_diff(const float *a, const float *b, int64_t n)
{
	double		m = 0;

	for (int64_t i = 0; i < n; i++)
		if (!(fabs((double) a[i] - b[i]) <= m))
			m = fabs((double) a[i] - b[i]);
	return m;
}

/* Copies a device tensor's values into a malloc'd host array. */
static float *
host_copy(const groma_tensor *t)
{
	float	   *h = malloc(groma_tensor_nbytes(t) + 1);

	CHECK(h != NULL && groma_download(t, h).code == GROMA_OK);
	return h;
}

/* The tiny model on the emulated device next to the CPU model, their arenas and one golden image. */
typedef struct device_run
{
	groma_model *dev_model;
	groma_arena act,
				out,
				host,
				cpu_act,
				cpu_out;
	uint8_t    *jpeg;
	size_t		len;
} device_run;

/* Installs the emulation, loads the model with matrix_dtype matrices and reads golden image `image`. */
static bool
device_run_open(device_run *r, int image, groma_dtype matrix_dtype)
{
	char		path[4096];
	groma_status st;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "%s%s", unit_path("test/golden/images/"), golden_cases[image].image);
	r->jpeg = unit_read_file(path, &r->len);
	device_emulation_install();
	st = groma_model_load_on(unit_path("test/golden/tiny-groma"), GROMA_DEVICE_CUDA, matrix_dtype, &r->dev_model);
	CHECKF(st.code == GROMA_OK, "loading onto the device: %s", st.message);
	CHECK(groma_device_arena_init(&r->act, (size_t) 384 << 20).code == GROMA_OK);
	CHECK(groma_device_arena_init(&r->out, (size_t) 64 << 20).code == GROMA_OK);
	CHECK(groma_arena_init(&r->host, (size_t) 16 << 20).code == GROMA_OK);
	CHECK(groma_arena_init(&r->cpu_act, (size_t) 1 << 30).code == GROMA_OK);
	CHECK(groma_arena_init(&r->cpu_out, (size_t) 64 << 20).code == GROMA_OK);
	return r->dev_model != NULL && r->jpeg != NULL;
}

/* Frees everything device_run_open made and removes the emulation. */
static void
device_run_close(device_run *r)
{
	groma_model_free(r->dev_model);
	groma_arena_free(&r->act);
	groma_arena_free(&r->out);
	groma_arena_free(&r->host);
	groma_arena_free(&r->cpu_act);
	groma_arena_free(&r->cpu_out);
	device_emulation_remove();
	free(r->jpeg);
}

/*
 * Vision and 12 greedy steps for the first golden image with the model on
 * the emulated device: the same kept boxes, scores and image tokens as the
 * CPU model, region tokens within 1e-4 (the CPU uses Winograd convolutions,
 * the device im2col), and the golden greedy ids.
 */
UNIT_TEST(test_model_runs_on_device_memory)
{
	groma_model *cpu_model = golden_tiny_model();
	groma_tokenizer *tok = golden_tiny_tokenizer();
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_vision_result dev,
				ref;
	groma_generation gen = {0};
	golden_case gc;
	device_run	r;
	const char *query;
	groma_status st;

	if (cpu_model == NULL || tok == NULL || !golden_case_open(golden_cases[0].name, &gc))
		return;
	if (!device_run_open(&r, 0, GROMA_F32))
		goto done;
	CHECK(r.dev_model->llm.embed.device == GROMA_DEVICE_CUDA && r.dev_model->vision.pos.device == GROMA_DEVICE_CUDA);
	/* a host arena that is act, or not CPU memory, is refused */
	CHECK(groma_vision_run(r.dev_model, r.jpeg, r.len, &limits, NULL, 0, &r.act, &r.out, &r.out, &dev).code ==
		  GROMA_ERR_INVALID_ARGUMENT);

	st = groma_vision_run(r.dev_model, r.jpeg, r.len, &limits, NULL, 0, &r.act, &r.out, &r.host, &dev);
	CHECKF(st.code == GROMA_OK, "vision on the device: %s", st.message);
	CHECK(groma_vision_run(cpu_model, r.jpeg, r.len, &limits, NULL, 0, &r.cpu_act, &r.cpu_out, &r.cpu_out,
						   &ref).code == GROMA_OK);
	if (st.code != GROMA_OK)
		goto done;
	CHECK(dev.n_regions == ref.n_regions && dev.n_regions > 0);
	if (dev.n_regions == ref.n_regions)
	{
		float	   *img = host_copy(&dev.image_tokens),
				   *reg = host_copy(&dev.region_tokens);
		double		d_img = max_diff(img, ref.image_tokens.data, groma_tensor_numel(&ref.image_tokens)),
					d_reg = max_diff(reg, ref.region_tokens.data, groma_tensor_numel(&ref.region_tokens));

		CHECK(memcmp(dev.kept, ref.kept, (size_t) dev.n_regions * sizeof(int64_t)) == 0);
		CHECK(memcmp(dev.boxes, ref.boxes, (size_t) dev.n_regions * 4 * sizeof(float)) == 0);
		CHECK(memcmp(dev.scores, ref.scores, (size_t) dev.n_regions * sizeof(float)) == 0);
		CHECKF(d_img == 0, "image tokens differ by %g", d_img);
		CHECKF(d_reg < 1e-4, "region tokens differ by %g", d_reg);
		unit_note("device: %d regions, image tokens identical, region tokens within %.2g of the CPU's", dev.n_regions,
				  d_reg);
		free(img);
		free(reg);
	}
	golden_compare_ids(&gc, "sel.noref.kept_indices", dev.kept, dev.n_regions);

	query = groma_st_metadata(gc.compact, "prompt.gcap.query");
	st = groma_generate(r.dev_model, tok, &dev, query ? query : "", 12, false, &r.act, &gen);
	CHECKF(st.code == GROMA_OK, "generating on the device: %s", st.message);
	if (st.code == GROMA_OK)
	{
		int64_t		ids[12];

		for (size_t i = 0; i < gen.n && i < 12; i++)
			ids[i] = gen.ids[i];
		golden_compare_ids(&gc, "prompt.gcap.generated_ids", ids, (int64_t) gen.n);
	}
	unit_note("device: %ld entry-point calls", device_emulation_calls());
	groma_generation_free(&gen);
done:
	device_run_close(&r);
	golden_case_close(&gc);
}

/* per image: its pixels up, its proposals' boxes down, its regions' RoIs and boxes up */
#define PER_IMAGE_TRANSFERS 4
/* per pass: the proposer's class logits of both heads and its top-k indices down */
#define PER_BATCH_TRANSFERS 3

/*
 * Host round trips of vision on the device: a pass over 1 and over 2
 * images copies between host and device only what each image needs to
 * (PER_IMAGE_TRANSFERS) plus the proposer's results once: the tables the
 * proposer and the region encoder read are uploaded with the weights and
 * the two-stage top-k runs on the device.
 */
UNIT_TEST(test_vision_round_trips_on_device)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_vision_input in[2];
	groma_vision_result res[2];
	groma_status each[2];
	long		before,
				one,
				two;
	device_run	r;

	if (!device_run_open(&r, 0, GROMA_F32))
	{
		device_run_close(&r);
		return;
	}
	for (int i = 0; i < 2; i++)
		in[i] = (groma_vision_input) {.jpeg = r.jpeg, .len = r.len, .limits = &limits};
	before = device_emulation_transfers();
	CHECK(groma_vision_run_batch(r.dev_model, 1, in, &r.act, &r.out, &r.host, res, each).code == GROMA_OK);
	one = device_emulation_transfers() - before;
	r.act.used = r.out.used = r.host.used = 0;
	before = device_emulation_transfers();
	{
		groma_status st = groma_vision_run_batch(r.dev_model, 2, in, &r.act, &r.out, &r.host, res, each);

		CHECKF(st.code == GROMA_OK, "2 images: %s", st.message);
	}
	two = device_emulation_transfers() - before;
	unit_note("vision on the device: %ld host/device copies for 1 image, %ld for 2", one, two);
	CHECKF(two - one == PER_IMAGE_TRANSFERS, "2 images copy %ld times more than 1, want %d", two - one,
		   PER_IMAGE_TRANSFERS);
	CHECKF(one <= PER_IMAGE_TRANSFERS + PER_BATCH_TRANSFERS, "one image copies %ld times, want at most %d", one,
		   PER_IMAGE_TRANSFERS + PER_BATCH_TRANSFERS);
	device_run_close(&r);
}

/* Writes 2·i into value i of a host tensor and counts the call (a fill_from_host callback). */
static groma_status
twice_index(void *ctx, groma_tensor *host)
{
	for (int64_t i = 0; i < groma_tensor_numel(host); i++)
		((float *) host->data)[i] = 2.0f * (float) i;
	(*(int *) ctx)++;
	return groma_ok();
}

/* Fill, upload, download and the host round trips on CPU tensors and on emulated device tensors. */
UNIT_TEST(test_transfers_on_cpu_and_device)
{
	for (int on_device = 0; on_device < 2; on_device++)
	{
		groma_arena a;
		groma_tensor t,
					view,
					img;
		float		in[12],
					back[12];
		float	   *owned = NULL;
		int			calls = 0;
		bool		ok = true;

		if (on_device)
			device_emulation_install();
		CHECK((on_device ? groma_device_arena_init(&a, 4096) : groma_arena_init(&a, 4096)).code == GROMA_OK);
		CHECK(groma_arena_tensor(&a, GROMA_F32, 2, (int64_t[]) {3, 4}, &t).code == GROMA_OK);
		for (int i = 0; i < 12; i++)
			in[i] = (float) i;
		CHECK(groma_upload(in, &t).code == GROMA_OK);
		/* zero the middle row through a view, add one everywhere on the host, upload, read back */
		CHECK(groma_tensor_narrow(&t, 0, 1, 1, &view).code == GROMA_OK);
		CHECK(groma_fill(&view, 0.0f).code == GROMA_OK);
		CHECK(groma_download(&t, back).code == GROMA_OK);
		for (int i = 0; i < 12; i++)
			back[i] += 1.0f;
		CHECK(groma_upload(back, &t).code == GROMA_OK);
		memset(back, 0, sizeof(back));
		CHECK(groma_download(&t, back).code == GROMA_OK);
		for (int i = 0; i < 12; i++)
			ok &= back[i] == (i / 4 == 1 ? 1.0f : (float) i + 1.0f);
		CHECKF(ok, "%s: fill/upload/download gave the wrong values", on_device ? "device" : "cpu");
		/* a host image of a device tensor is a copy; of a contiguous CPU tensor, the tensor itself */
		CHECK(groma_host_image(&t, &img, &owned).code == GROMA_OK);
		CHECK(img.device == GROMA_DEVICE_CPU && ((float *) img.data)[5] == 1.0f);
		CHECK(on_device ? owned != NULL && img.data == owned : owned == NULL && img.data == t.data);
		free(owned);
		/* a table built on the host, filled in one call */
		CHECK(groma_fill_from_host(&t, twice_index, &calls).code == GROMA_OK && calls == 1);
		CHECK(groma_download(&t, back).code == GROMA_OK);
		for (int i = 0; i < 12; i++)
			ok &= back[i] == 2.0f * (float) i;
		CHECKF(ok, "%s: fill_from_host gave the wrong values", on_device ? "device" : "cpu");
		/* a transposed CPU view is copied into contiguous memory */
		if (!on_device)
		{
			groma_tensor tr;

			CHECK(groma_tensor_permute(&t, (int[]) {1, 0}, &tr).code == GROMA_OK);
			CHECK(groma_host_image(&tr, &img, &owned).code == GROMA_OK && owned != NULL);
			CHECK(((float *) img.data)[1] == back[4] && ((float *) img.data)[3] == back[1]);
			free(owned);
			/* the CPU fills strided views too: column 2 of the [3, 4] tensor, seen as a row of the transpose */
			{
				groma_tensor col;
				float	   *d = t.data;

				CHECK(groma_tensor_narrow(&tr, 0, 2, 1, &col).code == GROMA_OK);
				CHECK(groma_fill(&col, 7.0f).code == GROMA_OK);
				CHECK(d[2] == 7.0f && d[6] == 7.0f && d[10] == 7.0f && d[1] == back[1] && d[3] == back[3]);
			}
		}
		groma_arena_free(&a);
		if (on_device)
			device_emulation_remove();
	}
}

/*
 * The tiny model with narrow matrices on the emulated device: bf16 ones
 * (the CPU twin widens them per call, so this is f32 arithmetic on
 * bf16-rounded weights), or i8 language-model ones with the rest bf16
 * (--weights int8): it runs end to end and the differences from the f32 CPU
 * model are reported; they stay small.
 */
static void
narrow_matrices_on_device(groma_dtype matrix_dtype)
{
	const char *label = matrix_dtype == GROMA_I8 ? "int8" : "bf16";
	const char *query = "[grounding]Please briefly summarize the content of this image.";
	groma_model *cpu_model = golden_tiny_model();
	groma_tokenizer *tok = golden_tiny_tokenizer();
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_vision_result dev,
				ref;
	groma_generation gen = {0},
				ref_gen = {0};
	device_run	r;
	groma_status st;

	if (cpu_model == NULL || tok == NULL)
		return;
	if (!device_run_open(&r, 1, matrix_dtype))
		goto done;
	CHECK(r.dev_model->llm.layer[0].q.dtype == matrix_dtype && r.dev_model->vision.layer[0].fc1_w.dtype == GROMA_BF16);
	CHECK(r.dev_model->llm.lm_head.dtype == GROMA_BF16 && r.dev_model->llm.layer[0].down.dtype == matrix_dtype);
	CHECK(r.dev_model->llm.embed.dtype == GROMA_F32 && r.dev_model->vision.layer[0].norm1_w.dtype == GROMA_F32);
	st = groma_vision_run(r.dev_model, r.jpeg, r.len, &limits, NULL, 0, &r.act, &r.out, &r.host, &dev);
	CHECKF(st.code == GROMA_OK, "vision with %s matrices: %s", label, st.message);
	CHECK(groma_vision_run(cpu_model, r.jpeg, r.len, &limits, NULL, 0, &r.cpu_act, &r.cpu_out, &r.cpu_out,
						   &ref).code == GROMA_OK);
	if (st.code != GROMA_OK)
		goto done;
	{
		float	   *img = host_copy(&dev.image_tokens);
		double		d_img = max_diff(img, ref.image_tokens.data, groma_tensor_numel(&ref.image_tokens));
		int			same = 0;

		for (int i = 0; i < dev.n_regions && i < ref.n_regions; i++)
			same += dev.kept[i] == ref.kept[i];
		unit_note("%s matrices: image tokens within %.3g of f32, %d of %d kept regions identical (f32: %d)", label,
				  d_img, same, dev.n_regions, ref.n_regions);
		CHECKF(d_img < 0.05, "%s image tokens differ by %g", label, d_img);
		free(img);
	}
	st = groma_generate(r.dev_model, tok, &dev, query, 12, false, &r.act, &gen);
	CHECKF(st.code == GROMA_OK, "generating with %s matrices: %s", label, st.message);
	if (st.code == GROMA_OK && groma_generate(cpu_model, tok, &ref, query, 12, false, &r.cpu_act, &ref_gen).code == GROMA_OK)
	{
		int			same = 0;

		for (size_t i = 0; i < gen.n && i < ref_gen.n && gen.ids[i] == ref_gen.ids[i]; i++)
			same++;
		unit_note("%s matrices: the first %d of 12 greedy ids equal the f32 model's", label, same);
	}
	groma_generation_free(&gen);
	groma_generation_free(&ref_gen);
done:
	device_run_close(&r);
}

/* bf16 matrices on the emulated device; see narrow_matrices_on_device. */
UNIT_TEST(test_model_with_bf16_matrices_on_device)
{
	narrow_matrices_on_device(GROMA_BF16);
}

/* --weights int8 on the emulated device: i8 language-model matrices, bf16 the rest; see narrow_matrices_on_device. */
UNIT_TEST(test_model_with_int8_matrices_on_device)
{
	narrow_matrices_on_device(GROMA_I8);
}

/* A backend whose allocations fail, lost or merely full. */
static bool fake_lost;

static void *
failing_alloc(size_t bytes)
{
	return NULL;
}

static bool
fake_lost_query(void)
{
	return fake_lost;
}

/* A failed device allocation says out of memory, or device lost once the backend reports a sticky error. */
UNIT_TEST(test_device_arena_reports_lost_device)
{
	groma_device_ops saved = groma_cuda_ops;
	groma_arena a;

	groma_cuda_ops = (groma_device_ops) {.name = "failing", .alloc = failing_alloc, .lost = fake_lost_query};
	fake_lost = false;
	CHECK(groma_device_arena_init(&a, 4096).code == GROMA_ERR_NO_MEMORY);
	fake_lost = true;
	CHECK(groma_device_arena_init(&a, 4096).code == GROMA_ERR_DEVICE_LOST);
	groma_cuda_ops = saved;
}
