/*
 * ops_conv_implicit.cu - 2-d convolution as an implicit GEMM on tensor
 * cores: y[n, o, p] = b[o] + Σ_k w[o, k] · x_col[n, k, p], with the im2col
 * column x_col never stored.  A block takes 64 output channels by 64
 * output pixels of one image; for each step of 32 along k = (c, ky, kx) it
 * stages the weights' tile, splits each k into its channel and tap once,
 * and gathers the input's tile (rounded to bf16, as the im2col path rounds
 * it) in shared memory, and its four warps
 * multiply them with warp matrix functions (bf16 16x16x16, f32
 * accumulators).  Weights bf16 [O, C, kh, kw] (that is [O, K]), x and y
 * f32 NCHW, any stride and padding.  ops_conv_norm.cu chooses it.
 */
#include "cuda_common.h"

#include <mma.h>

using namespace nvcuda;

#define IG_O 64					/* output channels a block takes */
#define IG_P 64					/* output pixels a block takes */
#define IG_K 32					/* k a block stages at once */
#define IG_WARPS 4				/* 2 x 2 warps of 32 x 32 outputs each */
#define IG_PAD_16 8				/* 16-bit tiles' row padding (keeps 32-byte tile alignment, spreads banks) */
#define IG_PAD_32 4				/* the f32 output tile's row padding */

/*
 * y[n, o0 + r, p0 + c] for the 64 x 64 tile of block (blockIdx.x: pixels,
 * blockIdx.y: channels) of image n0 + blockIdx.z: weights w[O, K] bf16,
 * input x[N, C, H, W] f32, output y[N, O, Ho, Wo] f32, bias b[O] or NULL.
 */
__global__ static void
conv_implicit_kernel(const float *x, const __nv_bfloat16 *w, const float *b, float *y, int64_t n0, int c_in, int h,
					 int wd, int kh, int kw, int ho, int wo, int stride, int padding, int c_out)
{
	alignas(32) __shared__ __nv_bfloat16 as[IG_O][IG_K + IG_PAD_16];	/* weights [64 channels, 32 k] */
	alignas(32) __shared__ __nv_bfloat16 bs[IG_K][IG_P + IG_PAD_16];	/* gathered input [32 k, 64 pixels] */
	alignas(32) __shared__ float cs[IG_O][IG_P + IG_PAD_32];	/* the block's outputs, for the stores */
	__shared__ int64_t k_plane[IG_K];	/* per k of the tile: its channel's offset in the image (c·H·W) */
	__shared__ int k_dy[IG_K],	/* and its kernel row and column, -1 past the end of k */
				k_dx[IG_K];
	int			tid = threadIdx.x,
				warp = tid >> 5,
				warp_o = (warp >> 1) * 32,	/* this warp's 32 x 32 outputs within the tile */
				warp_p = (warp & 1) * 32,
				taps = kh * kw,
				k_all = c_in * taps,
				plane = ho * wo,
				o0 = blockIdx.y * IG_O,
				p0 = blockIdx.x * IG_P,
				my_p = p0 + (tid & (IG_P - 1)),	/* the pixel this thread gathers */
				oy = my_p / wo,
				ox = my_p % wo;
	int64_t		n = n0 + blockIdx.z;
	const float *xn = x + n * (int64_t) c_in * h * wd;
	wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];

	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			wmma::fill_fragment(acc[i][j], 0.0f);
	for (int k0 = 0; k0 < k_all; k0 += IG_K)
	{
		__syncthreads();		/* the last tiles are used up */
		if (tid < IG_K)
		{
			/* each k's channel and tap, divided once per tile rather than once per gathered value */
			int			k = k0 + tid;

			k_plane[tid] = k < k_all ? (int64_t) (k / taps) * h * wd : 0;
			k_dy[tid] = k < k_all ? k % taps / kw : -1;
			k_dx[tid] = k < k_all ? k % taps % kw : 0;
		}
		/* weights: a thread per k column, rows 4 apart (contiguous along k) */
		for (int i = tid; i < IG_O * IG_K; i += IG_WARPS * 32)
		{
			int			r = i / IG_K,
						kk = i % IG_K;

			as[r][kk] = o0 + r < c_out && k0 + kk < k_all ? w[(int64_t) (o0 + r) * k_all + k0 + kk]
				: __float2bfloat16_rn(0.0f);
		}
		__syncthreads();		/* the k table is written */
		/* input: a thread per pixel (contiguous along x), k rows 2 apart */
		for (int kk = tid / IG_P; kk < IG_K; kk += IG_WARPS * 32 / IG_P)
		{
			float		v = 0.0f;

			if (k_dy[kk] >= 0 && my_p < plane)
			{
				int			iy = oy * stride - padding + k_dy[kk],
							ix = ox * stride - padding + k_dx[kk];

				if (iy >= 0 && iy < h && ix >= 0 && ix < wd)
					v = xn[k_plane[kk] + (int64_t) iy * wd + ix];
			}
			bs[kk][tid & (IG_P - 1)] = __float2bfloat16_rn(v);
		}
		__syncthreads();
#pragma unroll
		for (int kk = 0; kk < IG_K; kk += 16)
		{
			wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a[2];
			wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> bf[2];

			for (int i = 0; i < 2; i++)
				wmma::load_matrix_sync(a[i], &as[warp_o + 16 * i][kk], IG_K + IG_PAD_16);
			for (int j = 0; j < 2; j++)
				wmma::load_matrix_sync(bf[j], &bs[kk][warp_p + 16 * j], IG_P + IG_PAD_16);
			for (int i = 0; i < 2; i++)
				for (int j = 0; j < 2; j++)
					wmma::mma_sync(acc[i][j], a[i], bf[j], acc[i][j]);
		}
	}
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			wmma::store_matrix_sync(&cs[warp_o + 16 * i][warp_p + 16 * j], acc[i][j], IG_P + IG_PAD_32,
									wmma::mem_row_major);
	__syncthreads();
	/* a thread per pixel (contiguous along y), channel rows 2 apart */
	for (int r = tid / IG_P; r < IG_O; r += IG_WARPS * 32 / IG_P)
	{
		int			o = o0 + r;

		if (o < c_out && my_p < plane)
			y[(n * c_out + o) * (int64_t) plane + my_p] = cs[r][tid & (IG_P - 1)] + (b ? b[o] : 0.0f);
	}
}

/* Queues conv_implicit_kernel on stream for images [n0, n0 + images) (at most 65535). */
static groma_status
launch_conv_implicit(const float *x, const __nv_bfloat16 *w, const float *b, float *y, int64_t n0, int64_t images,
					 int c_in, int h, int wd, int kh, int kw, int ho, int wo, int stride, int padding, int c_out,
					 cudaStream_t stream)
{
	dim3		grid((unsigned) ((ho * wo + IG_P - 1) / IG_P), (unsigned) ((c_out + IG_O - 1) / IG_O),
					 (unsigned) images);

	conv_implicit_kernel<<<grid, IG_WARPS * 32, 0, stream>>>(x, w, b, y, n0, c_in, h, wd, kh, kw, ho, wo, stride,
															 padding, c_out);
	return groma_cuda_launched("conv2d (implicit GEMM, tensor cores)");
}

/* True when the implicit GEMM takes a convolution: bf16 weights, int-sized images and an output grid it can launch. */
extern "C" bool
groma_cuda_conv_implicit_fits(const groma_tensor *w, int64_t ho, int64_t wo)
{
	int64_t		k_all = w->shape[1] * w->shape[2] * w->shape[3];

	/* the kernel counts pixels, channels and k in int (a pixel tile's end included) */
	return w->dtype == GROMA_BF16 && k_all <= 0x7fffffff - IG_K && w->shape[0] <= 0x7fffffff - IG_O &&
		ho * wo <= 0x7fffffff - IG_P && (w->shape[0] + IG_O - 1) / IG_O <= 65535;
}

/* y = conv2d(x, w) + b by the implicit GEMM, for operands groma_cuda_conv2d checked; see cuda_common.h. */
extern "C" groma_status
groma_cuda_conv_implicit(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, int stride, int padding,
						 groma_tensor *y)
{
	int64_t		batch = x->shape[0];

	for (int64_t n0 = 0; n0 < batch; n0 += 65535)
		GROMA_TRY(launch_conv_implicit((const float *) x->data, (const __nv_bfloat16 *) w->data,
									   b ? (const float *) b->data : NULL, (float *) y->data, n0,
									   batch - n0 < 65535 ? batch - n0 : 65535, (int) x->shape[1], (int) x->shape[2],
									   (int) x->shape[3], (int) w->shape[2], (int) w->shape[3], (int) y->shape[2],
									   (int) y->shape[3], stride, padding, (int) w->shape[0], groma_cuda_stream()));
	return groma_ok();
}
