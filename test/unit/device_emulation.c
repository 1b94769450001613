/*
 * device_emulation.c - the emulated accelerator; see device_emulation.h.
 */
#include "device_emulation.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/runtime/cpu_parallel.h"
#include "../../src/runtime/device_ops.h"
#include "../../src/runtime/ops.h"
#include "../../src/runtime/ops_spatial.h"

#define MAX_REGIONS 64

typedef struct region
{
	void	   *base;
	size_t		len;
} region;

static region regions[MAX_REGIONS];
static int	n_regions;
static int	depth;				/* nesting of open/close */
static long calls;
static long transfers;			/* host/device copies: each one a synchronising round trip on a GPU */
static groma_device_ops saved;

/* Sets the protection of every region. */
static void
protect_all(int prot)
{
	for (int i = 0; i < n_regions; i++)
		mprotect(regions[i].base, regions[i].len, prot);
}

/* Opens device memory; see device_emulation.h. */
void
device_emulation_open(void)
{
	calls++;
	if (depth++ == 0)
		protect_all(PROT_READ | PROT_WRITE);
}

/* Closes device memory; see device_emulation.h. */
void
device_emulation_close(void)
{
	if (--depth == 0)
		protect_all(PROT_NONE);
}

/* Host/device copies made so far; see device_emulation.h. */
long
device_emulation_transfers(void)
{
	return transfers;
}

/* Entry points made so far; see device_emulation.h. */
long
device_emulation_calls(void)
{
	return calls;
}

/* Device memory: a private mapping that stays inaccessible outside entry points. */
static void *
emu_alloc(size_t bytes)
{
	size_t		page = (size_t) sysconf(_SC_PAGESIZE),
				len = (bytes + page - 1) / page * page;
	void	   *p;

	if (n_regions == MAX_REGIONS)
		return NULL;
	p = mmap(NULL, len > 0 ? len : page, depth > 0 ? PROT_READ | PROT_WRITE : PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* large pages where the kernel offers them: far fewer entries for each protection change */
	madvise(p, len > 0 ? len : page, MADV_HUGEPAGE);
	regions[n_regions++] = (region) {p, len > 0 ? len : page};
	return p;
}

/* Unmaps a region made by emu_alloc. */
static void
emu_free(void *p)
{
	for (int i = 0; i < n_regions; i++)
		if (regions[i].base == p)
		{
			munmap(p, regions[i].len);
			regions[i] = regions[--n_regions];
			return;
		}
}

/* Host to device copy. */
static groma_status
emu_to_device(void *dst, const void *src, size_t bytes)
{
	transfers++;
	device_emulation_open();
	memcpy(dst, src, bytes);
	device_emulation_close();
	return groma_ok();
}

/* Device to host copy. */
static groma_status
emu_to_host(void *dst, const void *src, size_t bytes)
{
	transfers++;
	device_emulation_open();
	memcpy(dst, src, bytes);
	device_emulation_close();
	return groma_ok();
}

/* Nothing is queued: always in sync. */
static groma_status
emu_synchronize(void)
{
	return groma_ok();
}

/* A CPU-flagged copy of t in slot, or NULL for no tensor. */
static groma_tensor *
cpu(const groma_tensor *t, groma_tensor *slot)
{
	if (t == NULL)
		return NULL;
	*slot = *t;
	slot->device = GROMA_DEVICE_CPU;
	return slot;
}

/* Runs one CPU op with device memory open: the body of every op wrapper. */
#define EMULATE(call) \
	do { \
		groma_status st_; \
		device_emulation_open(); \
		st_ = (call); \
		device_emulation_close(); \
		return st_; \
	} while (0)

static groma_status
emu_linear(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, groma_tensor *y)
{
	groma_tensor s[4];

	EMULATE(groma_linear(cpu(x, &s[0]), cpu(w, &s[1]), cpu(b, &s[2]), cpu(y, &s[3])));
}

static groma_status
emu_matmul(const groma_tensor *a, bool ta, const groma_tensor *b, bool tb, float alpha, groma_tensor *c)
{
	groma_tensor s[3];

	EMULATE(groma_matmul(cpu(a, &s[0]), ta, cpu(b, &s[1]), tb, alpha, cpu(c, &s[2])));
}

static groma_status
emu_unary(groma_unary_kind kind, const groma_tensor *x, groma_tensor *y)
{
	groma_tensor s[2];

	switch (kind)
	{
		case GROMA_UNARY_RELU:
			EMULATE(groma_relu(cpu(x, &s[0]), cpu(y, &s[1])));
		case GROMA_UNARY_GELU:
			EMULATE(groma_gelu(cpu(x, &s[0]), cpu(y, &s[1])));
		case GROMA_UNARY_SILU:
			EMULATE(groma_silu(cpu(x, &s[0]), cpu(y, &s[1])));
		case GROMA_UNARY_SIGMOID:
			EMULATE(groma_sigmoid(cpu(x, &s[0]), cpu(y, &s[1])));
	}
	return groma_error(GROMA_ERR_INVALID_ARGUMENT, "unknown activation");
}

static groma_status
emu_binary(bool multiply, const groma_tensor *a, const groma_tensor *b, groma_tensor *y)
{
	groma_tensor s[3];

	if (multiply)
		EMULATE(groma_mul(cpu(a, &s[0]), cpu(b, &s[1]), cpu(y, &s[2])));
	EMULATE(groma_add(cpu(a, &s[0]), cpu(b, &s[1]), cpu(y, &s[2])));
}

static groma_status
emu_scale(const groma_tensor *x, float sc, float t, groma_tensor *y)
{
	groma_tensor s[2];

	EMULATE(groma_scale(cpu(x, &s[0]), sc, t, cpu(y, &s[1])));
}

static groma_status
emu_softmax(const groma_tensor *x, groma_tensor *y)
{
	groma_tensor s[2];

	EMULATE(groma_softmax(cpu(x, &s[0]), cpu(y, &s[1])));
}

static groma_status
emu_layer_norm(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, float eps, groma_tensor *y)
{
	groma_tensor s[4];

	EMULATE(groma_layer_norm(cpu(x, &s[0]), cpu(w, &s[1]), cpu(b, &s[2]), eps, cpu(y, &s[3])));
}

static groma_status
emu_rms_norm(const groma_tensor *x, const groma_tensor *w, float eps, groma_tensor *y)
{
	groma_tensor s[3];

	EMULATE(groma_rms_norm(cpu(x, &s[0]), cpu(w, &s[1]), eps, cpu(y, &s[2])));
}

static groma_status
emu_add_rms_norm(groma_tensor *x, const groma_tensor *delta, const groma_tensor *w, float eps, groma_tensor *y)
{
	groma_tensor s[4];

	EMULATE(groma_add_rms_norm(cpu(x, &s[0]), cpu(delta, &s[1]), cpu(w, &s[2]), eps, cpu(y, &s[3])));
}

static groma_status
emu_silu_mul(const groma_tensor *gate, const groma_tensor *up, groma_tensor *y)
{
	groma_tensor s[3];

	EMULATE(groma_silu_mul(cpu(gate, &s[0]), cpu(up, &s[1]), cpu(y, &s[2])));
}

static groma_status
emu_argmax_rows(const groma_tensor *a, const groma_tensor *b, groma_tensor *idx)
{
	groma_tensor s[3];

	EMULATE(groma_argmax_rows(cpu(a, &s[0]), b ? cpu(b, &s[1]) : NULL, cpu(idx, &s[2])));
}

static groma_status
emu_attention_decode_rows(groma_tensor *q, groma_tensor *k, const groma_tensor *v, int64_t heads,
						  groma_tensor *const *k_cache, groma_tensor *const *v_cache, const groma_tensor *positions,
						  float theta, float scale, groma_arena_ref device_scratch, groma_tensor *ctx)
{
	enum { MAX_ROWS = 256 };
	groma_tensor s[5],
				kc[MAX_ROWS],
				vc[MAX_ROWS];
	groma_tensor *kp[MAX_ROWS],
			   *vp[MAX_ROWS],
			   *pos;
	groma_arena scratch;
	int64_t		most = 0;
	groma_status st;

	if (q->shape[0] > MAX_ROWS)
		return groma_error(GROMA_ERR_LIMIT, "emulated attention_decode_rows: over %d rows", MAX_ROWS);
	pos = cpu(positions, &s[4]);
	device_emulation_open();
	for (int64_t b = 0; b < q->shape[0]; b++)
	{
		int64_t		p = ((const int32_t *) pos->data)[b];

		kp[b] = cpu(k_cache[b], &kc[b]);
		vp[b] = cpu(v_cache[b], &vc[b]);
		most = p > most ? p : most;
	}
	device_emulation_close();
	/* the CPU attention keeps 64 score rows of its keys per pool thread, and widens a head of 16-bit caches */
	st = groma_arena_init(&scratch, (size_t) groma_cpu_threads() * 64 * (size_t) (most + 2) * sizeof(float) + 4096 +
						  (q->shape[0] > 0 && k_cache[0]->dtype != GROMA_F32 ?
						   (size_t) groma_cpu_threads() * 2 * (size_t) (most + 1) * (size_t) (q->shape[1] / heads) *
						   sizeof(float) : 0));
	if (st.code != GROMA_OK)
		return st;
	device_emulation_open();
	st = groma_attention_decode_rows(cpu(q, &s[0]), cpu(k, &s[1]), cpu(v, &s[2]), heads, kp, vp, pos, theta,
									 scale, &scratch, cpu(ctx, &s[3]));
	device_emulation_close();
	groma_arena_free(&scratch);
	return st;
}

static groma_status
emu_rope(groma_tensor *x, const int64_t *positions, int64_t start_pos, float theta)
{
	groma_tensor s[1];

	if (positions != NULL)
		return groma_error(GROMA_ERR_UNSUPPORTED, "rope: explicit positions are not supported on the GPU");

	EMULATE(groma_rope(cpu(x, &s[0]), positions, start_pos, theta));
}

static groma_status
emu_copy(const groma_tensor *src, groma_tensor *dst)
{
	groma_tensor s[2];

	if (src->device != dst->device && (!groma_tensor_is_contiguous(src) || !groma_tensor_is_contiguous(dst) ||
									   src->dtype != GROMA_F32 || dst->dtype != GROMA_F32))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "copy: host/device transfers need contiguous f32 tensors");

	EMULATE(groma_copy(cpu(src, &s[0]), cpu(dst, &s[1])));
}

static groma_status
emu_fill(groma_tensor *t, float v)
{
	groma_tensor s[1];

	if (!groma_tensor_is_contiguous(t))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "fill: contiguous tensors only on the GPU");

	EMULATE(groma_fill(cpu(t, &s[0]), v));
}

static groma_status
emu_fill_random(groma_tensor *t, uint64_t seed, float scale)
{
	groma_tensor s[1];

	EMULATE(groma_fill_random(cpu(t, &s[0]), seed, scale));
}

static groma_status
emu_convert(const groma_tensor *src, groma_tensor *dst)
{
	groma_tensor s[2];

	EMULATE(groma_convert(cpu(src, &s[0]), cpu(dst, &s[1])));
}

static groma_status
emu_inverse_sigmoid(const groma_tensor *x, float eps, groma_tensor *y)
{
	groma_tensor s[2];

	EMULATE(groma_inverse_sigmoid(cpu(x, &s[0]), eps, cpu(y, &s[1])));
}

static groma_status
emu_deform_locations(const groma_tensor *ref, int64_t map_h, int64_t map_w, int points, groma_tensor *loc)
{
	groma_tensor s[2];

	EMULATE(groma_deform_locations(cpu(ref, &s[0]), map_h, map_w, points, cpu(loc, &s[1])));
}

static groma_status
emu_linear_swiglu(const groma_tensor *x, const groma_tensor *w_gate, const groma_tensor *w_up, groma_tensor *gate,
				  groma_tensor *up)
{
	groma_tensor s[5];

	EMULATE(groma_linear_swiglu(cpu(x, &s[0]), cpu(w_gate, &s[1]), cpu(w_up, &s[2]), cpu(gate, &s[3]), cpu(up, &s[4])));
}

static groma_status
emu_linear_many(const groma_tensor *x, int count, const groma_tensor *const *w, const groma_tensor *const *b,
				groma_tensor *const *y)
{
	groma_tensor s[13],
			   *wp[4],
			   *bp[4],
			   *yp[4];

	for (int i = 0; i < count && i < 4; i++)
	{
		wp[i] = cpu(w[i], &s[1 + i]);
		bp[i] = b ? cpu(b[i], &s[9 + i]) : NULL;
		yp[i] = cpu(y[i], &s[5 + i]);
	}
	EMULATE(groma_linear_many(cpu(x, &s[0]), count, (const groma_tensor *const *) wp,
							  (const groma_tensor *const *) bp, yp));
}

static groma_status
emu_topk_rows(const groma_tensor *x, int k, groma_tensor *indices)
{
	groma_tensor s[2];

	EMULATE(groma_topk_rows(cpu(x, &s[0]), k, cpu(indices, &s[1])));
}

static groma_status
emu_proposal_queries(const groma_tensor *coords, const groma_tensor *indices, groma_tensor *ref, groma_tensor *pos)
{
	groma_tensor s[4];

	EMULATE(groma_proposal_queries(cpu(coords, &s[0]), cpu(indices, &s[1]), cpu(ref, &s[2]), cpu(pos, &s[3])));
}

/* Attention needs CPU scratch for its score rows; the caller's is device memory, so it makes its own. */
static groma_status
emu_attention(const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale, bool causal,
			  int64_t q_offset, groma_arena_ref device_scratch, groma_tensor *out)
{
	groma_tensor s[4];
	groma_arena scratch;

	if (q->shape[3] > 256)
		return groma_error(GROMA_ERR_UNSUPPORTED, "attention: head dimension %lld over 256", (long long) q->shape[3]);
	/* the CPU op keeps 64 score rows of Tk per pool thread, and widens a head of 16-bit keys and values there */
	groma_status st = groma_arena_init(&scratch, (size_t) groma_cpu_threads() * 64 * (size_t) (k->shape[2] + 1) *
									   sizeof(float) + 4096 +
									   (k->dtype != GROMA_F32 ? (size_t) groma_cpu_threads() * 2 *
										(size_t) (k->shape[2] * k->shape[3]) * sizeof(float) : 0));

	if (st.code != GROMA_OK)
		return st;
	device_emulation_open();
	st = groma_attention(cpu(q, &s[0]), cpu(k, &s[1]), cpu(v, &s[2]), scale, causal, q_offset, &scratch, cpu(out, &s[3]));
	device_emulation_close();
	groma_arena_free(&scratch);
	return st;
}

/* The emulated device computes attention in f32 whatever the compute type (as the CPU does). */
static groma_status
emu_attention_in(groma_dtype compute, const groma_tensor *q, const groma_tensor *k, const groma_tensor *v, float scale,
				 bool causal, int64_t q_offset, groma_arena_ref device_scratch, groma_tensor *out)
{
	(void) compute;
	return emu_attention(q, k, v, scale, causal, q_offset, device_scratch, out);
}

static groma_status
emu_conv2d(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, int stride, int padding,
		   groma_arena_ref scratch, groma_tensor *y)
{
	groma_tensor s[4];
	bool		direct = w->shape[2] == 1 && w->shape[3] == 1 && stride == 1 && padding == 0;

	if (!direct && (scratch == NULL || scratch->device != GROMA_DEVICE_CUDA))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv2d: a device scratch arena is needed on the GPU");

	EMULATE(groma_conv2d(cpu(x, &s[0]), cpu(w, &s[1]), cpu(b, &s[2]), stride, padding, scratch, cpu(y, &s[3])));
}

static groma_status
emu_group_norm(const groma_tensor *x, int groups, const groma_tensor *w, const groma_tensor *b, float eps,
			   bool relu, groma_tensor *y)
{
	groma_tensor s[4];

	if (relu)
		EMULATE(groma_group_norm_relu(cpu(x, &s[0]), groups, cpu(w, &s[1]), cpu(b, &s[2]), eps, cpu(y, &s[3])));
	EMULATE(groma_group_norm(cpu(x, &s[0]), groups, cpu(w, &s[1]), cpu(b, &s[2]), eps, cpu(y, &s[3])));
}

static groma_status
emu_layer_norm_channels(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, float eps,
						groma_tensor *y)
{
	groma_tensor s[4];

	EMULATE(groma_layer_norm_channels(cpu(x, &s[0]), cpu(w, &s[1]), cpu(b, &s[2]), eps, cpu(y, &s[3])));
}

static groma_status
emu_embedding(const groma_tensor *ids, const groma_tensor *table, groma_tensor *y)
{
	groma_tensor s[3];

	if (table->dtype != GROMA_F32 || ids->device != GROMA_DEVICE_CPU)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "embedding: host ids [T] and device table [V, D] give y [T, D]");

	EMULATE(groma_embedding(cpu(ids, &s[0]), cpu(table, &s[1]), cpu(y, &s[2])));
}

static groma_status
emu_resize_bilinear(const groma_tensor *x, bool align_corners, groma_tensor *y)
{
	groma_tensor s[2];

	EMULATE(groma_resize_bilinear(cpu(x, &s[0]), align_corners, cpu(y, &s[1])));
}

static groma_status
emu_ms_deform_attn(const groma_tensor *value, const int64_t *shapes, const int64_t *starts, int n_levels,
				   int n_points, const groma_tensor *loc, const groma_tensor *weights, groma_tensor *out)
{
	groma_tensor s[4];

	if (n_levels > 8)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "ms_deform_attn: at most 8 levels on the GPU");
	EMULATE(groma_ms_deform_attn(cpu(value, &s[0]), shapes, starts, n_levels, n_points, cpu(loc, &s[1]),
								 cpu(weights, &s[2]), cpu(out, &s[3])));
}

static groma_status
emu_roi_align(const groma_tensor *feat, const groma_tensor *rois, float spatial_scale, int sampling_ratio,
			  bool aligned, groma_tensor *out)
{
	groma_tensor s[3];

	if (sampling_ratio <= 0)
		return groma_error(GROMA_ERR_UNSUPPORTED, "roi_align: adaptive sampling is not supported on the GPU");
	EMULATE(groma_roi_align(cpu(feat, &s[0]), cpu(rois, &s[1]), spatial_scale, sampling_ratio, aligned,
							cpu(out, &s[2])));
}

/* Installs the table; see device_emulation.h. */
void
device_emulation_install(void)
{
	saved = groma_cuda_ops;
	groma_cuda_ops = (groma_device_ops) {
		.name = "emulated",
		.alloc = emu_alloc, .free = emu_free, .to_device = emu_to_device, .to_host = emu_to_host,
		.synchronize = emu_synchronize,
		.linear = emu_linear, .linear_many = emu_linear_many, .linear_swiglu = emu_linear_swiglu, .matmul = emu_matmul, .unary = emu_unary, .binary = emu_binary,
		.scale = emu_scale, .softmax = emu_softmax, .layer_norm = emu_layer_norm, .rms_norm = emu_rms_norm,
		.add_rms_norm = emu_add_rms_norm, .silu_mul = emu_silu_mul, .argmax_rows = emu_argmax_rows,
		.attention_decode_rows = emu_attention_decode_rows,
		.rope = emu_rope, .copy = emu_copy, .fill = emu_fill, .convert = emu_convert, .fill_random = emu_fill_random, .inverse_sigmoid = emu_inverse_sigmoid, .attention = emu_attention, .attention_in = emu_attention_in, .conv2d = emu_conv2d,
		.group_norm = emu_group_norm, .layer_norm_channels = emu_layer_norm_channels,
		.embedding = emu_embedding, .resize_bilinear = emu_resize_bilinear,
		.ms_deform_attn = emu_ms_deform_attn, .roi_align = emu_roi_align, .deform_locations = emu_deform_locations,
		.topk_rows = emu_topk_rows, .proposal_queries = emu_proposal_queries,
	};
	calls = 0;
}

/* Restores the table; see device_emulation.h. */
void
device_emulation_remove(void)
{
	groma_cuda_ops = saved;
}
