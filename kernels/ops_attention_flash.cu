/*
 * ops_attention_flash.cu - attention on tensor cores with no score matrix
 * in memory, for prompts and images whose scores do not fit the caller's
 * scratch (the GEMM path's limit) and whose head dimension is a multiple
 * of 16 up to 128.  q, k, v are rounded to bf16 as they are staged in
 * shared memory and the probabilities are rounded to bf16 before they
 * multiply v, as on the GEMM path with bf16 compute; scores, the softmax
 * and the outputs stay f32.
 *
 * A block takes 64 queries of one (batch, head), a warp 16 of them, and
 * walks the keys in tiles of 32 staged in shared memory twice: the first
 * walk finds each row's maximum and sum (an online softmax of scalars), the
 * second multiplies exp(s - max) / sum by v into accumulator fragments that
 * no rescaling ever touches, since the warp matrix functions leave their
 * layout unspecified.  That costs the q·kᵀ products twice (1.5 times the
 * multiplies of one pass).  The kernel has a launcher taking a stream.
 */
#include "cuda_common.h"

#include <cuda_bf16.h>
#include <mma.h>

using namespace nvcuda;

#define FLASH_WARPS 4			/* warps per block */
#define FLASH_ROWS 16			/* queries per warp: one fragment's rows */
#define FLASH_KEYS 32			/* keys per shared-memory tile: two fragments' columns */
#define FLASH_DIM 128			/* the largest head dimension (8 fragments) */
#define FLASH_TILES (FLASH_DIM / 16)

static_assert(FLASH_ROWS * 2 == 32, "two lanes share each row of the softmax");
static_assert(FLASH_KEYS == 32, "each of a row's two lanes takes 16 keys of a tile");

/*
 * out[b, h, i, :] = softmax(scale · q kᵀ + mask) v for the 64 queries of
 * tile blockIdx.x of (b, h) = blockIdx.y; query i sits at absolute position
 * q_offset + i and sees keys j <= that position when causal; a row that
 * sees no key is zeros, as on the CPU.
 */
__global__ static void
attention_flash_kernel(bhtd q, bhtd k, bhtd v, float *out, int64_t ob, int64_t oh,
					   int64_t ot, int64_t heads, int64_t tq, int64_t tk, int dim, float scale, bool causal,
					   int64_t q_offset)
{
	alignas(32) __shared__ __nv_bfloat16 qs[FLASH_WARPS][FLASH_ROWS][FLASH_DIM];
	alignas(32) __shared__ __nv_bfloat16 ks[FLASH_KEYS][FLASH_DIM];
	alignas(32) __shared__ __nv_bfloat16 vs[FLASH_KEYS][FLASH_DIM];
	alignas(32) __shared__ float ss[FLASH_WARPS][FLASH_ROWS][FLASH_KEYS];	/* scores, then output tiles */
	alignas(32) __shared__ __nv_bfloat16 ps[FLASH_WARPS][FLASH_ROWS][FLASH_KEYS];
	int			warp = threadIdx.x >> 5,
				lane = threadIdx.x & 31,
				row = lane >> 1,		/* the softmax row of this lane */
				half = lane & 1;		/* and which 16 keys of a tile it takes */
	int64_t		bh = blockIdx.y,
				b = bh / heads,
				h = bh % heads,
				block_q0 = (int64_t) blockIdx.x * FLASH_WARPS * FLASH_ROWS,
				block_rows = min((int64_t) FLASH_WARPS * FLASH_ROWS, tq - block_q0),
				q0 = block_q0 + warp * FLASH_ROWS,
				qi = q0 + row,
				kend = causal ? min(tk, q_offset + block_q0 + block_rows) : tk,	/* keys any query here sees */
				limit = qi < tq ? (causal ? min(tk, q_offset + qi + 1) : tk) : 0;	/* keys this row sees */
	const float *qbase = (const float *) q.data + b * q.sb + h * q.sh;
	int64_t		kbase = b * k.sb + h * k.sh,	/* element offsets of this head's keys and values */
				vbase = b * v.sb + h * v.sh;
	float		m = -INFINITY,
				l = 0.0f;
	wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> qa[FLASH_TILES];
	wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FLASH_TILES];

	for (int i = lane; i < FLASH_ROWS * dim; i += 32)
	{
		int			r = i / dim,
					d = i % dim;

		qs[warp][r][d] = __float2bfloat16_rn(q0 + r < tq ? qbase[(q0 + r) * q.st + d] : 0.0f);
	}
	__syncwarp();
#pragma unroll
	for (int t = 0; t < FLASH_TILES; t++)
	{
		if (t * 16 < dim)
			wmma::load_matrix_sync(qa[t], &qs[warp][0][t * 16], FLASH_DIM);
		wmma::fill_fragment(acc[t], 0.0f);
	}
	for (int pass = 0; pass < 2; pass++)
		for (int64_t j0 = 0; j0 < kend; j0 += FLASH_KEYS)
		{
			int			cols = (int) min((int64_t) FLASH_KEYS, kend - j0);
			float		s[16],
						mx = -INFINITY;

			__syncthreads();	/* the last tile is used up */
			for (int i = threadIdx.x; i < FLASH_KEYS * dim; i += FLASH_WARPS * 32)
			{
				int			c = i / dim,
							d = i % dim;

				ks[c][d] = __float2bfloat16_rn(c < cols ? groma_load_f32(k.data, kbase + (j0 + c) * k.st + d, k.type)
											   : 0.0f);
				if (pass == 1)
					vs[c][d] = __float2bfloat16_rn(c < cols ? groma_load_f32(v.data, vbase + (j0 + c) * v.st + d,
																			  v.type) : 0.0f);
			}
			__syncthreads();
			/* scores [16 rows, 32 keys] = q · kᵀ of this tile */
#pragma unroll
			for (int c16 = 0; c16 < FLASH_KEYS / 16; c16++)
			{
				wmma::fragment<wmma::accumulator, 16, 16, 16, float> sacc;

				wmma::fill_fragment(sacc, 0.0f);
#pragma unroll
				for (int t = 0; t < FLASH_TILES; t++)
					if (t * 16 < dim)
					{
						wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> kb;

						wmma::load_matrix_sync(kb, &ks[c16 * 16][t * 16], FLASH_DIM);
						wmma::mma_sync(sacc, qa[t], kb, sacc);
					}
				wmma::store_matrix_sync(&ss[warp][0][c16 * 16], sacc, FLASH_KEYS, wmma::mem_row_major);
			}
			__syncwarp();
#pragma unroll
			for (int c = 0; c < 16; c++)
			{
				int64_t		key = j0 + half * 16 + c;

				s[c] = key < limit ? ss[warp][row][half * 16 + c] * scale : -INFINITY;
				mx = fmaxf(mx, s[c]);
			}
			if (pass == 0)
			{
				/* the row's running maximum and sum */
				float		new_m = fmaxf(m, fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1))),
							sum = 0.0f;

#pragma unroll
				for (int c = 0; c < 16; c++)
					sum += s[c] == -INFINITY ? 0.0f : expf(s[c] - new_m);
				sum += __shfl_xor_sync(0xffffffffu, sum, 1);
				l = (m == -INFINITY ? 0.0f : l * expf(m - new_m)) + sum;
				m = new_m;
				continue;
			}
			/* the row's probabilities, rounded to bf16, then out += p · v */
#pragma unroll
			for (int c = 0; c < 16; c++)
				ps[warp][row][half * 16 + c] =
					__float2bfloat16_rn(s[c] == -INFINITY || l == 0.0f ? 0.0f : expf(s[c] - m) / l);
			__syncwarp();
#pragma unroll
			for (int c16 = 0; c16 < FLASH_KEYS / 16; c16++)
			{
				wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> pa;

				wmma::load_matrix_sync(pa, &ps[warp][0][c16 * 16], FLASH_KEYS);
#pragma unroll
				for (int t = 0; t < FLASH_TILES; t++)
					if (t * 16 < dim)
					{
						wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> vb;

						wmma::load_matrix_sync(vb, &vs[c16 * 16][t * 16], FLASH_DIM);
						wmma::mma_sync(acc[t], pa, vb, acc[t]);
					}
			}
		}
	/* each 16-column output tile through the warp's score buffer to out */
#pragma unroll
	for (int t = 0; t < FLASH_TILES; t++)
		if (t * 16 < dim)
		{
			__syncwarp();
			wmma::store_matrix_sync(&ss[warp][0][0], acc[t], FLASH_KEYS, wmma::mem_row_major);
			__syncwarp();
			for (int i = lane; i < FLASH_ROWS * 16; i += 32)
			{
				int			r = i / 16,
							c = i % 16;

				if (q0 + r < tq)
					out[b * ob + h * oh + (q0 + r) * ot + t * 16 + c] = ss[warp][r][c];
			}
		}
}

/* Queues attention_flash_kernel on stream: a block per 64 queries of each (batch, head). */
static groma_status
launch_attention_flash(bhtd q, bhtd k, bhtd v, float *out, int64_t ob, int64_t oh,
					   int64_t ot, int64_t batch, int64_t heads, int64_t tq, int64_t tk, int dim, float scale,
					   bool causal, int64_t q_offset, cudaStream_t stream)
{
	dim3		grid((unsigned) ((tq + FLASH_WARPS * FLASH_ROWS - 1) / (FLASH_WARPS * FLASH_ROWS)),
					 (unsigned) (batch * heads));

	attention_flash_kernel<<<grid, FLASH_WARPS * 32, 0, stream>>>(q, k, v, out, ob, oh, ot, heads, tq, tk, dim, scale,
																	causal, q_offset);
	return groma_cuda_launched("attention (flash, tensor cores)");
}

/* True when the flash kernel takes a head dimension (a multiple of 16, at most 128). */
extern "C" bool
groma_cuda_attention_flash_fits(int64_t dim)
{
	return dim > 0 && dim % 16 == 0 && dim <= FLASH_DIM;
}

/* Queues the flash kernel for operands groma_cuda_attention_in has checked; see cuda_common.h. */
extern "C" groma_status
groma_cuda_attention_flash(bhtd q, bhtd k, bhtd v, groma_tensor *out, int64_t tk, float scale, bool causal,
						   int64_t q_offset)
{
	if (!groma_cuda_attention_flash_fits(out->shape[3]))
		return groma_error(GROMA_ERR_UNSUPPORTED, "attention: the flash kernel takes head dimensions of 16 to %d "
						   "in steps of 16, not %lld", FLASH_DIM, (long long) out->shape[3]);
	return launch_attention_flash(q, k, v, (float *) out->data, out->stride[0], out->stride[1], out->stride[2],
								  out->shape[0], out->shape[1], out->shape[2], tk, (int) out->shape[3], scale, causal,
								  q_offset, groma_cuda_stream());
}
