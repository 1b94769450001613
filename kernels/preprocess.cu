/*
 * preprocess.cu - resize (PIL bicubic, fixed point) and normalise on the GPU.
 *
 * Kernel -> launcher(stream) -> checked entry point.  The weight tables come
 * from src/image/resize_bicubic.c, so the integer arithmetic here matches
 * the CPU twin bit for bit.
 */
#include "groma_cuda.h"

#include <cuda_runtime.h>
#include <stdio.h>

extern "C"
{
#include "../src/image/preprocess.h"
#include "../src/image/resize_bicubic.h"
}

#define PREC GROMA_RESAMPLE_PRECISION_BITS

/* Device copy of one axis' weight table. */
struct axis_dev
{
	int			out_size;
	int			taps;
	const int32_t *first;		/* [out_size] */
	const int32_t *count;		/* [out_size] */
	const int32_t *weights;		/* [out_size][taps] */
};

/* Horizontal pass: src [in_h][in_w][3] rows [row0, row0+rows) -> tmp [rows][out_w][3]. */
__global__ static void
resample_rows_kernel(const uint8_t *src, int in_w, int row0, int rows, axis_dev ax, uint8_t *tmp)
{
	int			xx = blockIdx.x * blockDim.x + threadIdx.x;
	int			y = blockIdx.y * blockDim.y + threadIdx.y;

	if (xx >= ax.out_size || y >= rows)
		return;
	const uint8_t *p = src + ((size_t) (row0 + y) * in_w + ax.first[xx]) * 3;
	const int32_t *k = ax.weights + (size_t) xx * ax.taps;
	int32_t		acc0 = 1 << (PREC - 1),
				acc1 = acc0,
				acc2 = acc0;

	for (int x = 0; x < ax.count[xx]; x++)
	{
		acc0 += p[x * 3 + 0] * k[x];
		acc1 += p[x * 3 + 1] * k[x];
		acc2 += p[x * 3 + 2] * k[x];
	}
	uint8_t    *out = tmp + ((size_t) y * ax.out_size + xx) * 3;

	out[0] = groma_resample_clip8(acc0);
	out[1] = groma_resample_clip8(acc1);
	out[2] = groma_resample_clip8(acc2);
}

/*
 * Vertical pass + normalise: tmp [][width][3] (first row = input row row0)
 * -> resized [out_h][width][3] and pixel_values [3][out_h][width].
 */
__global__ static void
resample_columns_normalize_kernel(const uint8_t *tmp, int width, int row0, axis_dev ay,
								  float3 mean, float3 stdev, uint8_t *resized, float *pixel_values)
{
	int			x = blockIdx.x * blockDim.x + threadIdx.x;
	int			yy = blockIdx.y * blockDim.y + threadIdx.y;

	if (x >= width || yy >= ay.out_size)
		return;
	const int32_t *k = ay.weights + (size_t) yy * ay.taps;
	const uint8_t *p = tmp + ((size_t) (ay.first[yy] - row0) * width + x) * 3;
	size_t		stride = (size_t) width * 3;
	size_t		plane = (size_t) width * ay.out_size;
	const float m[3] = {mean.x, mean.y, mean.z};
	const float s[3] = {stdev.x, stdev.y, stdev.z};

	for (int c = 0; c < 3; c++)
	{
		int32_t		acc = 1 << (PREC - 1);

		for (int y = 0; y < ay.count[yy]; y++)
			acc += p[y * stride + c] * k[y];
		uint8_t		v = groma_resample_clip8(acc);
		/* Same operations as groma_normalize_sample: double rescale, float normalise. */
		float		scaled = (float) ((double) v * (1.0 / 255.0));

		resized[((size_t) yy * width + x) * 3 + c] = v;
		pixel_values[c * plane + (size_t) yy * width + x] = __fdiv_rn(__fsub_rn(scaled, m[c]), s[c]);
	}
}

/* Launches both passes on stream. */
static cudaError_t
launch_preprocess(const uint8_t *src, int in_w, int row0, int rows, axis_dev ax, axis_dev ay,
				  uint8_t *tmp, uint8_t *resized, float *pixel_values, cudaStream_t stream)
{
	dim3		block(32, 8);
	dim3		grid_h((ax.out_size + block.x - 1) / block.x, (rows + block.y - 1) / block.y);
	dim3		grid_v((ax.out_size + block.x - 1) / block.x, (ay.out_size + block.y - 1) / block.y);
	float3		mean = make_float3(groma_image_mean[0], groma_image_mean[1], groma_image_mean[2]);
	float3		stdev = make_float3(groma_image_std[0], groma_image_std[1], groma_image_std[2]);

	resample_rows_kernel<<<grid_h, block, 0, stream>>>(src, in_w, row0, rows, ax, tmp);
	resample_columns_normalize_kernel<<<grid_v, block, 0, stream>>>(tmp, ax.out_size, row0, ay,
																	 mean, stdev, resized, pixel_values);
	return cudaGetLastError();
}

/* Device buffers of one preprocess call, freed together. */
struct preprocess_buffers
{
	uint8_t    *src;
	uint8_t    *tmp;
	uint8_t    *resized;
	float	   *pixels;
	int32_t    *tables;
};

/* Frees whatever was allocated in b. */
static void
free_buffers(preprocess_buffers *b)
{
	cudaFree(b->src);
	cudaFree(b->tmp);
	cudaFree(b->resized);
	cudaFree(b->pixels);
	cudaFree(b->tables);
}

#define CHECK_CUDA(call) do { \
	cudaError_t err_ = (call); \
	if (err_ != cudaSuccess) { \
		st = groma_cuda_error_status((int) err_, #call); \
		goto done; \
	} \
} while (0)

/* Copies one axis table into the packed device buffer at *cursor. */
static cudaError_t
upload_axis(const groma_resample_axis *a, int32_t *dev, size_t *cursor, axis_dev *out,
			cudaStream_t stream)
{
	size_t		n = (size_t) a->out_size;
	cudaError_t err;

	out->out_size = a->out_size;
	out->taps = a->taps;
	out->first = dev + *cursor;
	err = cudaMemcpyAsync(dev + *cursor, a->first, n * 4, cudaMemcpyHostToDevice, stream);
	*cursor += n;
	out->count = dev + *cursor;
	if (err == cudaSuccess)
		err = cudaMemcpyAsync(dev + *cursor, a->count, n * 4, cudaMemcpyHostToDevice, stream);
	*cursor += n;
	out->weights = dev + *cursor;
	if (err == cudaSuccess)
		err = cudaMemcpyAsync(dev + *cursor, a->weights, n * a->taps * 4, cudaMemcpyHostToDevice, stream);
	*cursor += n * a->taps;
	return err;
}

/* GPU twin of groma_preprocess_rgb; see groma_cuda.h. */
extern "C" groma_status
groma_cuda_preprocess_rgb(const uint8_t *rgb, int width, int height,
						  uint8_t *resized, float *pixel_values)
{
	const int	out = GROMA_IMAGE_SIZE;
	groma_resample_axis ax = {},
				ay = {};
	preprocess_buffers b = {};
	cudaStream_t stream = NULL;
	axis_dev	dax,
				day;
	size_t		cursor = 0;
	int			row0,
				rows;
	groma_status st = groma_resample_axis_build(width, out, &ax);

	if (st.code == GROMA_OK)
		st = groma_resample_axis_build(height, out, &ay);
	if (st.code != GROMA_OK)
		goto done;
	row0 = ay.first[0];
	rows = ay.first[out - 1] + ay.count[out - 1] - row0;

	CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
	CHECK_CUDA(cudaMalloc((void **) &b.src, (size_t) width * height * 3));
	CHECK_CUDA(cudaMalloc((void **) &b.tmp, (size_t) rows * out * 3));
	CHECK_CUDA(cudaMalloc((void **) &b.resized, (size_t) out * out * 3));
	CHECK_CUDA(cudaMalloc((void **) &b.pixels, (size_t) 3 * out * out * sizeof(float)));
	CHECK_CUDA(cudaMalloc((void **) &b.tables,
						  ((size_t) out * (2 + ax.taps) + (size_t) out * (2 + ay.taps)) * 4));
	CHECK_CUDA(cudaMemcpyAsync(b.src, rgb, (size_t) width * height * 3, cudaMemcpyHostToDevice, stream));
	CHECK_CUDA(upload_axis(&ax, b.tables, &cursor, &dax, stream));
	CHECK_CUDA(upload_axis(&ay, b.tables, &cursor, &day, stream));
	CHECK_CUDA(launch_preprocess(b.src, width, row0, rows, dax, day, b.tmp, b.resized, b.pixels, stream));
	if (resized != NULL)
		CHECK_CUDA(cudaMemcpyAsync(resized, b.resized, (size_t) out * out * 3, cudaMemcpyDeviceToHost, stream));
	CHECK_CUDA(cudaMemcpyAsync(pixel_values, b.pixels, (size_t) 3 * out * out * sizeof(float),
							   cudaMemcpyDeviceToHost, stream));
	CHECK_CUDA(cudaStreamSynchronize(stream));
done:
	free_buffers(&b);
	if (stream != NULL)
		cudaStreamDestroy(stream);
	groma_resample_axis_free(&ax);
	groma_resample_axis_free(&ay);
	return st;
}
