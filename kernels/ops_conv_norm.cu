/*
 * ops_conv_norm.cu - 2-d convolution (im2col kernel + cuBLAS), GroupNorm,
 * channel-first LayerNorm and embedding lookup on the GPU; each kernel has
 * a launcher taking a stream, the entry points check and pass theirs.
 */
#include "cuda_common.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define THREADS 256

/*
 * col[n, (c·kh + i)·kw + j, q] = x[n, c, oy·s - p + i, ox·s - p + j] (0
 * outside) for every tap j of kernel row i, output pixel p0 + q = oy·wo +
 * ox of a band of pcount pixels, and (c, i, q) from the thread (t = (c·kh
 * + i)·pcount + q over the grid's x), image n = n0 + blockIdx.y of the
 * chunk; col[images, kdim, pcount] in col_type.  A thread takes the kw
 * taps of one kernel row, so it divides three times for kw elements and a
 * few channels with a large kernel (DINOv2's 3 x 14 x 14 patches) still
 * spread over many threads.
 */
__global__ static void
im2col_kernel(const float *x, int64_t c_in, int h, int w, int kh, int kw, int stride, int pad, int wo, unsigned p0,
			  unsigned pcount, int64_t n0, int64_t kdim, groma_dtype col_type, void *col)
{
	unsigned	t = blockIdx.x * blockDim.x + threadIdx.x,
				q = t % pcount,
				p = p0 + q,
				ci = t / pcount;
	int			i = (int) (ci % (unsigned) kh),
				oy,
				ox,
				iy;
	int64_t		c = ci / (unsigned) kh,
				n = n0 + blockIdx.y,
				row;
	const float *line;

	if (c >= c_in)
		return;
	oy = (int) (p / (unsigned) wo);
	ox = (int) (p - (unsigned) oy * (unsigned) wo);
	iy = oy * stride - pad + i;
	line = x + ((n * c_in + c) * h + iy) * (int64_t) w;	/* input row iy of channel c (read only inside the image) */
	row = (c * kh + i) * kw;
	for (int j = 0; j < kw; j++)
	{
		int			ix = ox * stride - pad + j;

		groma_store_f32(col, (n * kdim + row + j) * (int64_t) pcount + q, col_type,
				  iy >= 0 && iy < h && ix >= 0 && ix < w ? line[ix] : 0.0f);
	}
}

/*
 * Queues im2col_kernel on stream for images [n0, n0 + 65535) (at most) of
 * col[images, kdim, pcount], output pixels [p0, p0 + pcount).
 */
static groma_status
launch_im2col(const float *x, int64_t images, int64_t c_in, int h, int w, int kh, int kw, int stride, int pad, int wo,
			  int64_t p0, int64_t pcount, int64_t n0, int64_t kdim, groma_dtype col_type, void *col,
			  cudaStream_t stream)
{
	dim3		grid(groma_cuda_blocks(c_in * kh * pcount, THREADS),
					 (unsigned) (images - n0 < 65535 ? images - n0 : 65535));

	im2col_kernel<<<grid, THREADS, 0, stream>>>(x, c_in, h, w, kh, kw, stride, pad, wo, (unsigned) p0,
												(unsigned) pcount, n0, kdim, col_type, col);
	return groma_cuda_launched("conv2d im2col");
}

/* The shape of one convolution: input, kernel, stride, padding and output sides. */
typedef struct conv_shape
{
	int64_t		c_in,
				h,
				w,
				kh,
				kw,
				ho,
				wo;
	int			stride,
				pad;
} conv_shape;

/*
 * Queues im2col_kernel on stream for the `images` images at xn over the
 * output pixels [p0, p0 + pcount): col[images, kdim, pcount]; images in
 * launches of at most 65535.
 */
static groma_status
im2col(const float *xn, int64_t images, const conv_shape *cs, int64_t p0, int64_t pcount, groma_dtype col_type,
	   void *col, cudaStream_t stream)
{
	int64_t		kdim = cs->c_in * cs->kh * cs->kw;

	if (cs->c_in * cs->kh * pcount > 0xffffffffLL - THREADS)
		return groma_error(GROMA_ERR_LIMIT, "conv2d: %lld channels of %lld pixels in one im2col launch",
						   (long long) cs->c_in, (long long) pcount);
	for (int64_t n0 = 0; n0 < images; n0 += 65535)
		GROMA_TRY(launch_im2col(xn, images, cs->c_in, (int) cs->h, (int) cs->w, (int) cs->kh, (int) cs->kw, cs->stride,
								cs->pad, (int) cs->wo, p0, pcount, n0, kdim, col_type, col, stream));
	return groma_ok();
}

/* y[n, o, p] = b[o] for `images` images (b may be NULL: zeros). */
__global__ static void
fill_channels_kernel(float *y, const float *b, int64_t images, int64_t channels, int64_t plane)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < images * channels * plane)
		y[i] = b ? b[(i / plane) % channels] : 0.0f;
}

/* Queues fill_channels_kernel on stream: y[images, channels, plane] = b[channels] (b may be NULL: zeros). */
static groma_status
launch_fill_channels(float *y, const float *b, int64_t images, int64_t channels, int64_t plane, cudaStream_t stream)
{
	fill_channels_kernel<<<groma_cuda_blocks(images * channels * plane, THREADS), THREADS, 0, stream>>>(
		y, b, images, channels, plane);
	return groma_cuda_launched("conv2d bias");
}

/* The im2col scratch one chunk of images may take (the chunk is at least one image). */
#define CONV_CHUNK_BYTES ((size_t) 256 << 20)

/*
 * One strided-batched GEMM of a convolution, in cuBLAS's column-major
 * terms: c[m, n] = a[m, k] · bm[k, n] + beta · c for each of `batch`
 * matrices (a, c strided, bm shared), a and bm in dtype.  f32 stays f32
 * (the handle is pedantic); 16-bit operands multiply on tensor cores with
 * f32 accumulation and output.
 */
static groma_status
conv_gemm(groma_dtype dtype, int64_t m, int64_t n, int64_t k, const void *a, int64_t lda, int64_t stride_a,
		  const void *bm, int64_t ldb, float beta, float *c, int64_t ldc, int64_t stride_c, int64_t batch)
{
	const float one = 1.0f;
	cudaDataType_t type = dtype == GROMA_BF16 ? CUDA_R_16BF : CUDA_R_16F;
	groma_status st;

	if (dtype == GROMA_F32)
		return groma_cublas_status(cublasSgemmStridedBatched(groma_cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_N, (int) m,
															 (int) n, (int) k, &one, (const float *) a, (int) lda,
															 stride_a, (const float *) bm, (int) ldb, 0, &beta, c,
															 (int) ldc, stride_c, (int) batch),
								   "conv2d: cublasSgemmStridedBatched");
	/* the handle is pedantic for the f32 GEMMs' sake; 16-bit products may take any tensor-core kernel */
	cublasSetMathMode(groma_cuda_blas(), CUBLAS_DEFAULT_MATH);
	st = groma_cublas_status(cublasGemmStridedBatchedEx(groma_cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_N, (int) m, (int) n,
														(int) k, &one, a, type, (int) lda, stride_a, bm, type,
														(int) ldb, 0, &beta, c, CUDA_R_32F, (int) ldc, stride_c,
														(int) batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
							 "conv2d: cublasGemmStridedBatchedEx");
	cublasSetMathMode(groma_cuda_blas(), CUBLAS_PEDANTIC_MATH);
	return st;
}

/*
 * y[n][O, P] += w[O, K] · col[n][K, P] for each image of a chunk, as
 * yᵀ = colᵀ · wᵀ in column-major; w is shared.  P = pixels columns of y,
 * whose rows are ldy apart (a band of an image's plane).  16-bit weights
 * multiply with col in the same type.
 */
static groma_status
im2col_gemm(const groma_tensor *w, const void *col, int64_t col_stride, int64_t images, int64_t pixels, int64_t ldy,
			int64_t c_out, int64_t kdim, float *y)
{
	return conv_gemm(w->dtype, pixels, c_out, kdim, col, pixels, col_stride, w->data, kdim, 1.0f, y, ldy,
					 c_out * ldy, images);
}

/*
 * One image whose im2col does not fit the room: its output rows in bands
 * of `rows` (col holds one band), one im2col on stream and one GEMM each,
 * into yn (which already holds the bias).
 */
static groma_status
conv_image_in_bands(const float *xn, const groma_tensor *w, const conv_shape *cs, int64_t rows, void *col, float *yn,
					cudaStream_t stream)
{
	int64_t		kdim = cs->c_in * cs->kh * cs->kw,
				plane = cs->ho * cs->wo;

	for (int64_t oy = 0; oy < cs->ho; oy += rows)
	{
		int64_t		band = (cs->ho - oy < rows ? cs->ho - oy : rows) * cs->wo;

		GROMA_TRY(im2col(xn, 1, cs, oy * cs->wo, band, w->dtype, col, stream));
		GROMA_TRY(im2col_gemm(w, col, kdim * band, 1, band, plane, w->shape[0], kdim, yn + oy * cs->wo));
	}
	return groma_ok();
}

/*
 * rows[n, c, j, yy, xx] = x[n0 + n, c, yy - pad, xx + j - pad] (0 outside
 * the image) for yy < hp, xx < wp: copy j of the zero-padded image shifted
 * left by j, in col_type; a thread per element of one image's kw copies
 * (`per` of them, grid x), an image per grid row (blockIdx.y).
 */
__global__ static void
shift_rows_kernel(const float *x, int64_t c_in, unsigned per, int h, int w, int kw, int pad, int hp, int wp,
				  int64_t n0, groma_dtype col_type, void *rows)
{
	unsigned	t = blockIdx.x * blockDim.x + threadIdx.x,
				r;
	int			xx,
				yy,
				j,
				iy,
				ix;
	int64_t		n = blockIdx.y,
				c;

	if (t >= per)
		return;
	xx = (int) (t % (unsigned) wp);
	r = t / (unsigned) wp;
	yy = (int) (r % (unsigned) hp);
	r /= (unsigned) hp;
	j = (int) (r % (unsigned) kw);
	c = r / (unsigned) kw;
	iy = yy - pad;
	ix = xx + j - pad;
	groma_store_f32(rows, n * per + t, col_type,
			  iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(((n0 + n) * c_in + c) * h + iy) * (int64_t) w + ix] : 0.0f);
}

/* Queues shift_rows_kernel on stream for images [n0, n0 + count) (count ≤ 65535) into rows[count, C, kw, hp, wp]. */
static groma_status
launch_shift_rows(const float *x, int64_t c_in, int64_t per, int h, int w, int kw, int pad, int hp, int wp,
				  int64_t n0, int64_t count, groma_dtype col_type, void *rows, cudaStream_t stream)
{
	shift_rows_kernel<<<dim3(groma_cuda_blocks(per, THREADS), (unsigned) count), THREADS, 0, stream>>>(
		x, c_in, (unsigned) per, h, w, kw, pad, hp, wp, n0, col_type, rows);
	return groma_cuda_launched("conv2d shifted rows");
}

/* packed[i, o, c · kw + j] = w[o, c, i, j], elements of `size` bytes (4 or 2): kernel row i's [O, C·kw] matrix. */
__global__ static void
pack_rows_kernel(const void *w, int64_t c_out, int64_t c_in, int kh, int kw, int size, void *packed)
{
	int64_t		t = (int64_t) blockIdx.x * blockDim.x + threadIdx.x,
				r = t,
				src;
	int			j,
				i;
	int64_t		c,
				o;

	if (t >= kh * c_out * c_in * kw)
		return;
	j = (int) (r % kw);
	r /= kw;
	c = r % c_in;
	r /= c_in;
	o = r % c_out;
	i = (int) (r / c_out);
	src = ((o * c_in + c) * kh + i) * kw + j;
	if (size == 4)
		((float *) packed)[t] = ((const float *) w)[src];
	else
		((unsigned short *) packed)[t] = ((const unsigned short *) w)[src];
}

/* Queues pack_rows_kernel on stream: w[O, C, kh, kw] into packed[kh, O, C·kw]. */
static groma_status
launch_pack_rows(const void *w, int64_t c_out, int64_t c_in, int kh, int kw, int size, void *packed,
				 cudaStream_t stream)
{
	pack_rows_kernel<<<groma_cuda_blocks(kh * c_out * c_in * kw, THREADS), THREADS, 0, stream>>>(
		w, c_out, c_in, kh, kw, size, packed);
	return groma_cuda_launched("conv2d weight rows");
}

/* y[n, o, oy, ox] = full[n, o, oy · wp + ox] (+ b[o]) for ox < wo: the valid columns of the row GEMMs' sums. */
__global__ static void
crop_rows_kernel(const float *full, const float *b, int64_t count, int64_t c_out, int ho, int wo, int wp, float *y)
{
	int64_t		t = (int64_t) blockIdx.x * blockDim.x + threadIdx.x,
				r;
	int			ox,
				oy;

	if (t >= count * c_out * ho * wo)
		return;
	ox = (int) (t % wo);
	r = t / wo;
	oy = (int) (r % ho);
	r /= ho;					/* n · O + o */
	y[t] = full[(r * ho + oy) * wp + ox] + (b ? b[r % c_out] : 0.0f);
}

/* Queues crop_rows_kernel on stream for count images of y[count, O, ho, wo]. */
static groma_status
launch_crop_rows(const float *full, const float *b, int64_t count, int64_t c_out, int ho, int wo, int wp, float *y,
				 cudaStream_t stream)
{
	crop_rows_kernel<<<groma_cuda_blocks(count * c_out * ho * wo, THREADS), THREADS, 0, stream>>>(
		full, b, count, c_out, ho, wo, wp, y);
	return groma_cuda_launched("conv2d crop");
}

/*
 * y = conv2d(x, w) (+ b) with stride 1, by kernel rows.  Per chunk of
 * images: the kw shifted copies of each padded image, rows[n, C, kw, hp,
 * wp] (wp rounded up to 8 so every row starts 16-byte aligned), then for
 * each kernel row i one strided-batched GEMM full[n][O, Ho·wp] (+)= w_i[O,
 * C·kw] · rows[n] read from padded row i on, then the valid columns and
 * the bias into y.  An image costs kw·C·hp·wp + O·Ho·wp values of scratch
 * against im2col's kh·kw·C·Ho·Wo, and the GEMMs read kw copies, not kh·kw.
 * *no_room is set (nothing queued) when not one image fits, or one image's
 * copies or GEMMs are over the 32-bit sizes the kernels and cuBLAS take,
 * for the caller to go by im2col bands.
 */
static groma_status
conv_by_rows(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, const conv_shape *cs,
			 int64_t batch, int64_t c_out, groma_arena_ref scratch, float *y, bool *no_room)
{
	int64_t		hp = cs->h + 2 * cs->pad,
				wp = (cs->w + 2 * cs->pad + 7) / 8 * 8,
				kdim = cs->c_in * cs->kw,	/* one GEMM's depth */
				per = kdim * hp * wp,		/* one image's shifted copies */
				m = cs->ho * wp,			/* one image's output columns, valid or not */
				chunk;
	size_t		elem = w->dtype == GROMA_F32 ? sizeof(float) : 2,
				packed_bytes = groma_arena_round((size_t) (cs->kh * c_out * kdim) * elem),
				per_image = (size_t) per * elem + (size_t) (c_out * m) * sizeof(float),
				mark = scratch->used,
				room = scratch->size - scratch->used;
	char	   *packed,
			   *rows;
	float	   *full;
	groma_status st = groma_ok();
	cudaStream_t stream = groma_cuda_stream();

	*no_room = per > 0x7fffffffLL - THREADS || hp * wp > 0x7fffffffLL || m > 0x7fffffffLL || kdim > 0x7fffffffLL;
	if (*no_room)
		return groma_error(GROMA_ERR_LIMIT, "conv2d: %lld values in one image's shifted copies", (long long) per);
	room = room < CONV_CHUNK_BYTES ? room : CONV_CHUNK_BYTES;
	room = room > packed_bytes + 3 * GROMA_ARENA_ALIGN ? room - packed_bytes - 3 * GROMA_ARENA_ALIGN : 0;
	chunk = (int64_t) (room / per_image);
	chunk = chunk > batch ? batch : chunk > 65535 ? 65535 : chunk;	/* images: grid y */
	if (chunk == 0)
	{
		*no_room = true;
		return groma_error(GROMA_ERR_NO_MEMORY, "conv2d: not one image's shifted copies fit the scratch");
	}
	packed = (char *) groma_arena_alloc(scratch, packed_bytes);	/* [kh, O, C·kw] */
	rows = (char *) groma_arena_alloc(scratch, (size_t) (chunk * per) * elem);	/* [chunk, C, kw, hp, wp] */
	full = (float *) groma_arena_alloc(scratch, (size_t) (chunk * c_out * m) * sizeof(float));	/* [chunk, O, m] */
	if (packed == NULL || rows == NULL || full == NULL)
	{
		scratch->used = mark;
		return groma_error(GROMA_ERR_NO_MEMORY, "conv2d: device scratch arena too small for the shifted copies");
	}
	st = launch_pack_rows(w->data, c_out, cs->c_in, (int) cs->kh, (int) cs->kw, (int) elem, packed, stream);
	for (int64_t n0 = 0; n0 < batch && st.code == GROMA_OK; n0 += chunk)
	{
		int64_t		count = batch - n0 < chunk ? batch - n0 : chunk;

		st = launch_shift_rows((const float *) x->data, cs->c_in, per, (int) cs->h, (int) cs->w, (int) cs->kw, cs->pad,
							   (int) hp, (int) wp, n0, count, w->dtype, rows, stream);
		for (int64_t i = 0; i < cs->kh && st.code == GROMA_OK; i++)
			st = conv_gemm(w->dtype, m, c_out, kdim, rows + (size_t) (i * wp) * elem, hp * wp, per,
						   packed + (size_t) (i * c_out * kdim) * elem, kdim, i == 0 ? 0.0f : 1.0f, full, m,
						   c_out * m, count);
		if (st.code == GROMA_OK)
			st = launch_crop_rows(full, b ? (const float *) b->data : NULL, count, c_out, (int) cs->ho, (int) cs->wo,
								  (int) wp, y + n0 * c_out * cs->ho * cs->wo, stream);
	}
	scratch->used = mark;		/* the buffers go back, after a failure too */
	return st;
}

/*
 * y = conv2d(x, w) (+ b); see ops.h.  A stride-1 kernel larger than 1x1
 * goes by kernel rows (conv_by_rows).  Otherwise images go in chunks: one
 * im2col, one bias fill and one strided-batched GEMM per chunk (the weights
 * shared), so 100 region maps cost a few launches, not 300; an image whose
 * im2col alone exceeds the room (at most CONV_CHUNK_BYTES) goes in bands of
 * output rows, so no convolution needs more scratch than that (nor does one
 * whose shifted copies do not fit).  scratch must be a device arena (f32
 * 1x1 convolutions need none; with 16-bit weights the "im2col" of a 1x1
 * convolution is x rounded to that type).
 */
extern "C" groma_status
groma_cuda_conv2d(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, int stride, int padding,
				  groma_arena_ref scratch, groma_tensor *y)
{
	int64_t		batch = x->shape[0],
				c_in = x->shape[1],
				h = x->shape[2],
				wd = x->shape[3],
				c_out = w->shape[0],
				kh = w->shape[2],
				kw = w->shape[3],
				ho,
				wo,
				kdim,
				plane,
				chunk = 1,
				band_rows = 0;	/* > 0: one image at a time, in bands of that many output rows */
	bool		direct;
	conv_shape	cs;
	void	   *col = NULL;
	size_t		mark = scratch ? scratch->used : 0,
				elem = w && w->dtype != GROMA_F32 ? 2 : sizeof(float);
	groma_status st = groma_ok();

	GROMA_TRY(groma_cuda_check_f32("conv2d", "x", x));
	GROMA_TRY(groma_cuda_check_weight("conv2d", w));
	GROMA_TRY(groma_cuda_check_f32("conv2d", "y", y));
	if (b)
		GROMA_TRY(groma_cuda_check_f32("conv2d", "b", b));
	if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4 || w->shape[1] != c_in || stride < 1 || padding < 0 ||
		h + 2 * padding < kh || wd + 2 * padding < kw)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv2d: x [B,C,H,W] and w [O,C,kh,kw] do not fit");
	ho = (h + 2 * padding - kh) / stride + 1;
	wo = (wd + 2 * padding - kw) / stride + 1;
	plane = ho * wo;
	kdim = c_in * kh * kw;
	cs = conv_shape{c_in, h, wd, kh, kw, ho, wo, stride, padding};
	if (y->shape[0] != batch || y->shape[1] != c_out || y->shape[2] != ho || y->shape[3] != wo ||
		(b && groma_tensor_numel(b) != c_out))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv2d: y or b has the wrong shape");
	if (batch == 0 || c_out == 0 || plane == 0)
		return groma_ok();
	direct = kh == 1 && kw == 1 && stride == 1 && padding == 0 && w->dtype == GROMA_F32;
	GROMA_TRY(groma_cuda_gemm_dims("conv2d", plane, c_out, kdim));
	if (h + 2 * (int64_t) padding > (1 << 30) || wd + 2 * (int64_t) padding > (1 << 30))
		return groma_error(GROMA_ERR_LIMIT, "conv2d: an image side over 2^30");
	if (groma_cuda_ctx()->conv_path == GROMA_CONV_IMPLICIT && kdim > 0 && groma_cuda_conv_implicit_fits(w, ho, wo))
		return groma_cuda_conv_implicit(x, w, b, stride, padding, y);
	if (stride == 1 && kh * kw > 1 && kdim > 0 && groma_cuda_ctx()->conv_path != GROMA_CONV_IM2COL && scratch &&
		scratch->device == GROMA_DEVICE_CUDA)
	{
		bool		no_room;

		st = conv_by_rows(x, w, b, &cs, batch, c_out, scratch, (float *) y->data, &no_room);
		if (!no_room)
			return st;
		st = groma_ok();		/* not one image fits: im2col in bands of output rows below */
	}
	if (direct)
		chunk = batch > 65535 ? 65535 : batch;
	else if (kdim > 0)
	{
		/* rounded up as the arena rounds, so `chunk` images (or `band_rows` output rows) always fit */
		size_t		per_image = groma_arena_round((size_t) (kdim * plane) * elem),
					per_row = (size_t) (kdim * wo) * elem,
					room;

		if (scratch == NULL || scratch->device != GROMA_DEVICE_CUDA)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "conv2d: a device scratch arena is needed on the GPU");
		room = scratch->size - scratch->used;
		room = room < CONV_CHUNK_BYTES ? room : CONV_CHUNK_BYTES;
		room = room > GROMA_ARENA_ALIGN ? room - GROMA_ARENA_ALIGN : 0;
		chunk = (int64_t) (room / per_image);
		chunk = chunk > batch ? batch : chunk > 65535 ? 65535 : chunk;	/* images: grid z */
		if (chunk == 0)
		{
			/* not one image's im2col fits: each image in bands of output rows */
			band_rows = (int64_t) (room / per_row);
			band_rows = band_rows > ho ? ho : band_rows;
			if (band_rows == 0)
				return groma_error(GROMA_ERR_NO_MEMORY,
								   "conv2d: device scratch arena too small for the im2col of one output row (%zu bytes)",
								   per_row);
			chunk = 1;
			col = groma_arena_alloc(scratch, (size_t) band_rows * per_row);	/* [C·kh·kw, band_rows·Wo] */
		}
		else
			col = groma_arena_alloc(scratch, (size_t) chunk * per_image);	/* [chunk, C·kh·kw, Ho·Wo] */
		if (col == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "conv2d: device scratch arena too small for im2col");
	}
	for (int64_t n0 = 0; n0 < batch && st.code == GROMA_OK; n0 += chunk)
	{
		int64_t		images = batch - n0 < chunk ? batch - n0 : chunk;
		const float *xn = (const float *) x->data + n0 * c_in * h * wd;
		float	   *yn = (float *) y->data + n0 * c_out * plane;	/* [images, O, Ho·Wo] */

		if (!direct && kdim > 0 && band_rows == 0)
			st = im2col(xn, images, &cs, 0, plane, w->dtype, col, groma_cuda_stream());
		if (st.code == GROMA_OK)
			st = launch_fill_channels(yn, b ? (const float *) b->data : NULL, images, c_out, plane,
									  groma_cuda_stream());
		/* no input channels: the bias alone */
		if (st.code == GROMA_OK && kdim > 0 && band_rows > 0)
			st = conv_image_in_bands(xn, w, &cs, band_rows, col, yn, groma_cuda_stream());
		else if (st.code == GROMA_OK && kdim > 0)
			st = im2col_gemm(w, direct ? (const void *) xn : col, direct ? c_in * h * wd : kdim * plane, images, plane,
							 plane, c_out, kdim, yn);
	}
	if (scratch)
		scratch->used = mark;	/* the im2col buffer goes back, after a failure too */
	return st;
}

/* GroupNorm of one (image, group) per block: two passes over per·hw values. */
__global__ static void
group_norm_kernel(const float *x, const float *w, const float *b, float eps, bool relu, float *y, int64_t channels,
				  int64_t hw, int groups)
{
	__shared__ float scratch[32];
	int64_t		per = channels / groups,
				count = per * hw,
				base = (int64_t) blockIdx.x * count;	/* (n · groups + g) · per · hw */
	int			g = blockIdx.x % groups;
	float		sum = 0.0f,
				sq = 0.0f,
				mean,
				inv;

	for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
		sum += x[base + i];
	mean = groma_block_sum(sum, scratch) / (float) count;
	for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
		sq += (x[base + i] - mean) * (x[base + i] - mean);
	inv = rsqrtf(groma_block_sum(sq, scratch) / (float) count + eps);
	for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
	{
		int64_t		c = g * per + i / hw;
		float		v = (x[base + i] - mean) * inv * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);

		y[base + i] = relu ? (v > 0.0f ? v : 0.0f) : v;
	}
}

/* Queues group_norm_kernel on stream: a block per (image, group) of x, y [batch, channels, hw]. */
static groma_status
launch_group_norm(const float *x, const float *w, const float *b, float eps, bool relu, float *y, int64_t batch,
				  int64_t channels, int64_t hw, int groups, cudaStream_t stream)
{
	group_norm_kernel<<<(unsigned) (batch * groups), THREADS, 0, stream>>>(x, w, b, eps, relu, y, channels, hw, groups);
	return groma_cuda_launched("group_norm");
}

#define GN_SPLIT_MIN 8192		/* values per block, at least, when a group is split over blocks */
#define GN_MAX_SPLITS 64
#define GN_PARTIALS 65536		/* partial results the device buffer holds: (image, group, split) */

/*
 * The mean of group bg = blockIdx.y from the partial sums of its `splits`
 * blocks (every thread adds them in the same order).
 */
__device__ static float
group_mean(const float *sums, int splits, int64_t count)
{
	float		total = 0.0f;

	for (int s = 0; s < splits; s++)
		total += sums[(int64_t) blockIdx.y * splits + s];
	return total / (float) count;
}

/*
 * A pass over split blockIdx.x of group blockIdx.y ((n · groups + g), its
 * count values contiguous in x): with squares unset, writes the segment's
 * sum to out; set, the sum of its squared deviations from the group mean
 * (from sums).
 */
__global__ static void
group_partial_kernel(const float *x, int64_t count, int64_t seg, const float *sums, bool squares, float *out)
{
	__shared__ float scratch[32];
	int			splits = gridDim.x;
	int64_t		base = (int64_t) blockIdx.y * count,
				beg = (int64_t) blockIdx.x * seg,
				end = min(count, beg + seg);
	float		mean = squares ? group_mean(sums, splits, count) : 0.0f,
				acc = 0.0f;

	for (int64_t i = beg + threadIdx.x; i < end; i += blockDim.x)
	{
		float		v = x[base + i];

		acc += squares ? (v - mean) * (v - mean) : v;
	}
	acc = groma_block_sum(acc, scratch);
	if (threadIdx.x == 0)
		out[(int64_t) blockIdx.y * splits + blockIdx.x] = acc;
}

/*
 * Queues group_partial_kernel on stream over `splits` segments of seg values
 * of each of the bg groups of count values: out[bg, splits] (sums, or
 * squared deviations when squares is set).
 */
static groma_status
launch_group_partial(const float *x, int64_t count, int64_t seg, int64_t splits, int64_t bg, const float *sums,
					 bool squares, float *out, cudaStream_t stream)
{
	dim3		grid((unsigned) splits, (unsigned) bg);

	group_partial_kernel<<<grid, THREADS, 0, stream>>>(x, count, seg, sums, squares, out);
	return groma_cuda_launched(squares ? "group_norm squared deviations" : "group_norm sums");
}

/* y over split blockIdx.x of group blockIdx.y, from the group's partial sums and squared deviations. */
__global__ static void
group_normalize_kernel(const float *x, const float *w, const float *b, float eps, bool relu, float *y,
					   int64_t count, int64_t seg, int64_t hw, int groups, const float *sums, const float *squares)
{
	int			splits = gridDim.x,
				g = blockIdx.y % groups;
	int64_t		per = count / hw,
				base = (int64_t) blockIdx.y * count,
				beg = (int64_t) blockIdx.x * seg,
				end = min(count, beg + seg);
	float		mean = group_mean(sums, splits, count),
				inv = rsqrtf(group_mean(squares, splits, count) + eps);

	for (int64_t i = beg + threadIdx.x; i < end; i += blockDim.x)
	{
		int64_t		c = g * per + i / hw;
		float		v = (x[base + i] - mean) * inv * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);

		y[base + i] = relu ? (v > 0.0f ? v : 0.0f) : v;
	}
}

/*
 * Queues group_normalize_kernel on stream over `splits` segments of seg
 * values of each of the bg groups of count values, from their partial
 * sums and squares [bg, splits].
 */
static groma_status
launch_group_normalize(const float *x, const float *w, const float *b, float eps, bool relu, float *y, int64_t count,
					   int64_t seg, int64_t hw, int groups, int64_t splits, int64_t bg, const float *sums,
					   const float *squares, cudaStream_t stream)
{
	dim3		grid((unsigned) splits, (unsigned) bg);

	group_normalize_kernel<<<grid, THREADS, 0, stream>>>(x, w, b, eps, relu, y, count, seg, hw, groups, sums, squares);
	return groma_cuda_launched("group_norm");
}

/*
 * GroupNorm of [B, C, H, W], then ReLU when relu is set; see ops.h.  Large
 * groups split over blocks (three passes), small ones a block each.
 */
extern "C" groma_status
groma_cuda_group_norm(const groma_tensor *x, int groups, const groma_tensor *w, const groma_tensor *b, float eps,
					  bool relu, groma_tensor *y)
{
	int64_t		bg,
				count,
				splits,
				seg;

	GROMA_TRY(groma_cuda_check_f32("group_norm", "x", x));
	GROMA_TRY(groma_cuda_check_f32("group_norm", "y", y));
	if (x->ndim != 4 || !groma_tensor_same_shape(x, y) || groups < 1 || x->shape[1] % groups != 0 ||
		(w && groma_tensor_numel(w) != x->shape[1]) || (b && groma_tensor_numel(b) != x->shape[1]))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "group_norm: shapes or groups do not fit");
	if (groma_tensor_numel(x) == 0)
		return groma_ok();
	bg = x->shape[0] * groups;
	count = groma_tensor_numel(x) / bg;
	splits = (count + GN_SPLIT_MIN - 1) / GN_SPLIT_MIN;
	splits = splits > GN_MAX_SPLITS ? GN_MAX_SPLITS : splits;
	if (splits > 1 && bg * splits * 2 <= GN_PARTIALS && bg <= 65535)
	{
		const float *wd = w ? (const float *) w->data : NULL,
				   *bd = b ? (const float *) b->data : NULL;
		float	   *sums,
				   *squares;
		groma_status st;

		/* one partial result per (image · group, split) */
		sums = (float *) groma_cuda_buffer_reserve(&groma_cuda_ctx()->gn_partials, GN_PARTIALS * sizeof(float),
												   "group_norm: partial sums", &st);
		if (sums == NULL)
			return st;
		squares = sums + bg * splits;
		seg = (count + splits - 1) / splits;
		GROMA_TRY(launch_group_partial((const float *) x->data, count, seg, splits, bg, NULL, false, sums,
									   groma_cuda_stream()));
		GROMA_TRY(launch_group_partial((const float *) x->data, count, seg, splits, bg, sums, true, squares,
									   groma_cuda_stream()));
		return launch_group_normalize((const float *) x->data, wd, bd, eps, relu, (float *) y->data, count, seg,
									  x->shape[2] * x->shape[3], groups, splits, bg, sums, squares,
									  groma_cuda_stream());
	}
	return launch_group_norm((const float *) x->data, w ? (const float *) w->data : NULL,
							 b ? (const float *) b->data : NULL, eps, relu, (float *) y->data, x->shape[0], x->shape[1],
							 x->shape[2] * x->shape[3], groups, groma_cuda_stream());
}

/* LayerNorm over channels at one pixel per thread (adjacent threads, adjacent pixels). */
__global__ static void
layer_norm_channels_kernel(const float *x, const float *w, const float *b, float eps, float *y, int64_t batch,
						   int64_t channels, int64_t hw)
{
	int64_t		idx = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int64_t		n = idx / hw,
				p = idx % hw;
	const float *in;
	float	   *out;
	float		sum = 0.0f,
				sq = 0.0f,
				mean,
				inv;

	if (idx >= batch * hw)
		return;
	in = x + n * channels * hw + p;
	out = y + n * channels * hw + p;
	for (int64_t c = 0; c < channels; c++)
		sum += in[c * hw];
	mean = sum / (float) channels;
	for (int64_t c = 0; c < channels; c++)
		sq += (in[c * hw] - mean) * (in[c * hw] - mean);
	inv = rsqrtf(sq / (float) channels + eps);
	for (int64_t c = 0; c < channels; c++)
		out[c * hw] = (in[c * hw] - mean) * inv * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
}

/* Queues layer_norm_channels_kernel on stream over the batch · hw pixels of x, y [batch, channels, hw]. */
static groma_status
launch_layer_norm_channels(const float *x, const float *w, const float *b, float eps, float *y, int64_t batch,
						   int64_t channels, int64_t hw, cudaStream_t stream)
{
	layer_norm_channels_kernel<<<groma_cuda_blocks(batch * hw, THREADS), THREADS, 0, stream>>>(
		x, w, b, eps, y, batch, channels, hw);
	return groma_cuda_launched("layer_norm_channels");
}

/* LayerNorm over channels of [B, C, H, W]; see ops.h. */
extern "C" groma_status
groma_cuda_layer_norm_channels(const groma_tensor *x, const groma_tensor *w, const groma_tensor *b, float eps,
							   groma_tensor *y)
{
	int64_t		pixels;

	GROMA_TRY(groma_cuda_check_f32("layer_norm_channels", "x", x));
	GROMA_TRY(groma_cuda_check_f32("layer_norm_channels", "y", y));
	if (x->ndim != 4 || !groma_tensor_same_shape(x, y) || (w && groma_tensor_numel(w) != x->shape[1]) ||
		(b && groma_tensor_numel(b) != x->shape[1]))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "layer_norm_channels: shapes do not fit");
	pixels = x->shape[0] * x->shape[2] * x->shape[3];
	if (pixels == 0)
		return groma_ok();
	return launch_layer_norm_channels((const float *) x->data, w ? (const float *) w->data : NULL,
									  b ? (const float *) b->data : NULL, eps, (float *) y->data, x->shape[0],
									  x->shape[1], x->shape[2] * x->shape[3], groma_cuda_stream());
}

/* y[T, D] = table[ids[t]] with ids in host memory (checked there) and table, y on the GPU. */
extern "C" groma_status
groma_cuda_embedding(const groma_tensor *ids, const groma_tensor *table, groma_tensor *y)
{
	int64_t		count = groma_tensor_numel(ids),
				vocab = table->shape[0],
				dim = table->shape[1];

	GROMA_TRY(groma_cuda_check_f32("embedding", "table", table));
	GROMA_TRY(groma_cuda_check_f32("embedding", "y", y));
	if (ids->device != GROMA_DEVICE_CPU || (ids->dtype != GROMA_I64 && ids->dtype != GROMA_I32) || table->ndim != 2 ||
		y->ndim != 2 || y->shape[0] != count || y->shape[1] != dim)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "embedding: host ids [T] and device table [V, D] give y [T, D]");
	for (int64_t t = 0; t < count; t++)
	{
		int64_t		id = ids->dtype == GROMA_I64 ? ((const int64_t *) ids->data)[t] : ((const int32_t *) ids->data)[t];

		if (id < 0 || id >= vocab)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "embedding: id %lld at %lld is outside 0..%lld",
							   (long long) id, (long long) t, (long long) vocab - 1);
		GROMA_TRY(groma_cuda_status(cudaMemcpyAsync((float *) y->data + t * dim, (const float *) table->data + id * dim,
													(size_t) dim * sizeof(float), cudaMemcpyDeviceToDevice,
													groma_cuda_stream()), "embedding row copy"));
	}
	return groma_ok();
}

/* Forces one convolution method (tests and benchmarks compare them); see groma_cuda.h. */
extern "C" void
groma_cuda_conv_kernel(groma_cuda_conv_path which)
{
	groma_cuda_ctx()->conv_path = which;
	groma_cuda_ctx()->generation++;	/* recordings made with the other path are stale */
}
