/*
 * ops_elementwise.cu - unary activations, broadcasting add/mul, affine
 * scale, fills (constant and random), inverse sigmoid and strided copy on
 * the GPU; each kernel has a launcher taking a stream, called by its checked
 * entry point.
 */
#include "cuda_common.h"
#include "../src/runtime/random_hash.h"

#define THREADS 256

/* y[i] = f(x[i]) for one activation. */
__global__ static void
unary_kernel(groma_unary_kind kind, const float *x, float *y, int64_t n)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	float		v;

	if (i >= n)
		return;
	v = x[i];
	switch (kind)
	{
		case GROMA_UNARY_RELU:
			v = v > 0.0f ? v : 0.0f;
			break;
		case GROMA_UNARY_GELU:
			v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
			break;
		case GROMA_UNARY_SILU:
			v = v / (1.0f + expf(-v));
			break;
		case GROMA_UNARY_SIGMOID:
			v = 1.0f / (1.0f + expf(-v));
			break;
	}
	y[i] = v;
}

/* Queues unary_kernel on stream over the n values of x and y. */
static groma_status
launch_unary(groma_unary_kind kind, const float *x, float *y, int64_t n, cudaStream_t stream)
{
	unary_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(kind, x, y, n);
	return groma_cuda_launched("activation");
}

/* Applies an activation; see ops.h. */
extern "C" groma_status
groma_cuda_unary(groma_unary_kind kind, const groma_tensor *x, groma_tensor *y)
{
	int64_t		n = groma_tensor_numel(x);

	GROMA_TRY(groma_cuda_check_f32("activation", "x", x));
	GROMA_TRY(groma_cuda_check_f32("activation", "y", y));
	if (!groma_tensor_same_shape(x, y))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "activation: x and y differ in shape");
	if (n == 0)
		return groma_ok();
	return launch_unary(kind, (const float *) x->data, (float *) y->data, n, groma_cuda_stream());
}

/* y[i] = silu(gate[i]) · up[i]. */
__global__ static void
silu_mul_kernel(const float *gate, const float *up, float *y, int64_t n)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	float		s;

	if (i >= n)
		return;
	s = gate[i] / (1.0f + expf(-gate[i]));
	y[i] = s * up[i];
}

/* Queues silu_mul_kernel on stream over the n values of gate, up and y. */
static groma_status
launch_silu_mul(const float *gate, const float *up, float *y, int64_t n, cudaStream_t stream)
{
	silu_mul_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(gate, up, y, n);
	return groma_cuda_launched("silu_mul");
}

/* y = silu(gate) · up; see ops.h. */
extern "C" groma_status
groma_cuda_silu_mul(const groma_tensor *gate, const groma_tensor *up, groma_tensor *y)
{
	int64_t		n = groma_tensor_numel(gate);

	GROMA_TRY(groma_cuda_check_f32("silu_mul", "gate", gate));
	GROMA_TRY(groma_cuda_check_f32("silu_mul", "up", up));
	GROMA_TRY(groma_cuda_check_f32("silu_mul", "y", y));
	if (!groma_tensor_same_shape(gate, up) || !groma_tensor_same_shape(gate, y))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "silu_mul: gate, up and y differ in shape");
	if (n == 0)
		return groma_ok();
	return launch_silu_mul((const float *) gate->data, (const float *) up->data, (float *) y->data, n,
						   groma_cuda_stream());
}

/* t[i] = v. */
__global__ static void
fill_kernel(float *t, float v, int64_t n)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		t[i] = v;
}

/* Queues fill_kernel on stream over the n values of t. */
static groma_status
launch_fill(float *t, float v, int64_t n, cudaStream_t stream)
{
	fill_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(t, v, n);
	return groma_cuda_launched("fill");
}

/* t = v everywhere (contiguous); see ops.h. */
extern "C" groma_status
groma_cuda_fill(groma_tensor *t, float v)
{
	int64_t		n = groma_tensor_numel(t);

	GROMA_TRY(groma_cuda_check_f32("fill", "t", t));
	if (n == 0)
		return groma_ok();
	return launch_fill((float *) t->data, v, n, groma_cuda_stream());
}

/* t[i] = groma_random_uniform(seed, i, scale). */
__global__ static void
fill_random_kernel(float *t, uint64_t seed, float scale, int64_t n)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		t[i] = groma_random_uniform(seed, (uint64_t) i, scale);
}

/* Queues fill_random_kernel on stream over the n values of t. */
static groma_status
launch_fill_random(float *t, uint64_t seed, float scale, int64_t n, cudaStream_t stream)
{
	fill_random_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(t, seed, scale, n);
	return groma_cuda_launched("fill_random");
}

/* Random values, the same as the CPU's; see ops.h. */
extern "C" groma_status
groma_cuda_fill_random(groma_tensor *t, uint64_t seed, float scale)
{
	int64_t		n = groma_tensor_numel(t);

	GROMA_TRY(groma_cuda_check_f32("fill_random", "t", t));
	if (n == 0)
		return groma_ok();
	return launch_fill_random((float *) t->data, seed, scale, n, groma_cuda_stream());
}

/* y[i] = log(max(x', eps) / max(1 - x', eps)), x' = x clamped to [0, 1]; NaN stays NaN. */
__global__ static void
inverse_sigmoid_kernel(const float *x, float eps, float *y, int64_t n)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	float		v,
				num,
				den;

	if (i >= n)
		return;
	v = x[i];
	v = v < 0.0f ? 0.0f : v;
	v = v > 1.0f ? 1.0f : v;
	num = v < eps ? eps : v;
	den = 1.0f - v;
	den = den < eps ? eps : den;
	y[i] = logf(num / den);
}

/* Queues inverse_sigmoid_kernel on stream over the n values of x and y. */
static groma_status
launch_inverse_sigmoid(const float *x, float eps, float *y, int64_t n, cudaStream_t stream)
{
	inverse_sigmoid_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(x, eps, y, n);
	return groma_cuda_launched("inverse_sigmoid");
}

/* transformers' inverse_sigmoid; see ops_spatial.h. */
extern "C" groma_status
groma_cuda_inverse_sigmoid(const groma_tensor *x, float eps, groma_tensor *y)
{
	int64_t		n = groma_tensor_numel(x);

	GROMA_TRY(groma_cuda_check_f32("inverse_sigmoid", "x", x));
	GROMA_TRY(groma_cuda_check_f32("inverse_sigmoid", "y", y));
	if (!groma_tensor_same_shape(x, y))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "inverse_sigmoid: x and y differ in shape");
	if (n == 0)
		return groma_ok();
	return launch_inverse_sigmoid((const float *) x->data, eps, (float *) y->data, n, groma_cuda_stream());
}

/* y[i] = a[i] (+ or ·) b[broadcast offset of i]. */
__global__ static void
binary_kernel(bool multiply, const float *a, const float *b, float *y, int64_t n, groma_dims4 shape,
			  groma_dims4 bstrides)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	float		bv;

	if (i >= n)
		return;
	bv = b[groma_offset_of(i, n, shape, bstrides)];
	y[i] = multiply ? a[i] * bv : a[i] + bv;
}

/* Queues binary_kernel on stream over the n values of y, with b read through bstrides (0 where it broadcasts). */
static groma_status
launch_binary(bool multiply, const float *a, const float *b, float *y, int64_t n, groma_dims4 shape,
			  groma_dims4 bstrides, cudaStream_t stream)
{
	binary_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(multiply, a, b, y, n, shape, bstrides);
	return groma_cuda_launched("add/mul");
}

/*
 * y = a + b or a · b four values at a time, where b is y's trailing block
 * (a bias, or b of y's shape): b4[i % nb4].
 */
__global__ static void
binary_vec4_kernel(bool multiply, const float4 *a, const float4 *b, float4 *y, int64_t n4, int64_t nb4)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	float4		av,
				bv,
				r;

	if (i >= n4)
		return;
	av = a[i];
	bv = b[nb4 == n4 ? i : i % nb4];
	r.x = multiply ? av.x * bv.x : av.x + bv.x;
	r.y = multiply ? av.y * bv.y : av.y + bv.y;
	r.z = multiply ? av.z * bv.z : av.z + bv.z;
	r.w = multiply ? av.w * bv.w : av.w + bv.w;
	y[i] = r;
}

/* Queues binary_vec4_kernel on stream over the n4 float4s of a and y, with b's nb4 float4s repeated. */
static groma_status
launch_binary_vec4(bool multiply, const float4 *a, const float4 *b, float4 *y, int64_t n4, int64_t nb4,
				   cudaStream_t stream)
{
	binary_vec4_kernel<<<groma_cuda_blocks(n4, THREADS), THREADS, 0, stream>>>(multiply, a, b, y, n4, nb4);
	return groma_cuda_launched("add/mul");
}

/* y = a + b or a · b with b broadcast from the right; see ops.h. */
extern "C" groma_status
groma_cuda_binary(bool multiply, const groma_tensor *a, const groma_tensor *b, groma_tensor *y)
{
	groma_dims4 shape,
				bs;
	int64_t		n = groma_tensor_numel(y);
	int			off = y->ndim - b->ndim;

	GROMA_TRY(groma_cuda_check_f32("add/mul", "a", a));
	GROMA_TRY(groma_cuda_check_f32("add/mul", "y", y));
	if (b->data == NULL || b->dtype != GROMA_F32 || b->device != GROMA_DEVICE_CUDA || !groma_tensor_same_shape(a, y) ||
		off < 0)
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "add/mul: operands do not fit");
	shape = groma_cuda_dims4(y);
	bs = groma_dims4{};			/* b's strides: 0 where it broadcasts */
	for (int d = 0; d < y->ndim; d++)
	{
		int			bd = d - off;

		if (bd < 0 || b->shape[bd] == 1)
			continue;
		if (b->shape[bd] != y->shape[d])
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "add/mul: b cannot broadcast to y");
		bs.stride[d + (4 - y->ndim)] = b->stride[bd];
	}
	if (n == 0)
		return groma_ok();
	/* b contiguous and exactly y's trailing dimensions (a bias, or y's shape): four values a thread */
	{
		bool		trailing = groma_tensor_is_contiguous(b);
		int64_t		nb = groma_tensor_numel(b);

		for (int bd = 0; bd < b->ndim && trailing; bd++)
			trailing = b->shape[bd] == y->shape[bd + off];
		if (trailing && nb > 0 && nb % 4 == 0 && n % nb == 0 && groma_cuda_aligned16(a->data) &&
			groma_cuda_aligned16(b->data) && groma_cuda_aligned16(y->data))
			return launch_binary_vec4(multiply, (const float4 *) a->data, (const float4 *) b->data, (float4 *) y->data,
									  n / 4, nb / 4, groma_cuda_stream());
	}
	return launch_binary(multiply, (const float *) a->data, (const float *) b->data, (float *) y->data, n, shape, bs,
						 groma_cuda_stream());
}

/* y[i] = x[i] · s + t. */
__global__ static void
scale_kernel(const float *x, float s, float t, float *y, int64_t n)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		y[i] = x[i] * s + t;
}

/* Queues scale_kernel on stream over the n values of x and y. */
static groma_status
launch_scale(const float *x, float s, float t, float *y, int64_t n, cudaStream_t stream)
{
	scale_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(x, s, t, y, n);
	return groma_cuda_launched("scale");
}

/* y = x · s + t; see ops.h. */
extern "C" groma_status
groma_cuda_scale(const groma_tensor *x, float s, float t, groma_tensor *y)
{
	int64_t		n = groma_tensor_numel(x);

	GROMA_TRY(groma_cuda_check_f32("scale", "x", x));
	GROMA_TRY(groma_cuda_check_f32("scale", "y", y));
	if (!groma_tensor_same_shape(x, y))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "scale: x and y differ in shape");
	if (n == 0)
		return groma_ok();
	return launch_scale((const float *) x->data, s, t, (float *) y->data, n, groma_cuda_stream());
}

/* dst[offset of i] = src[offset of i] for strided 4-d views of the same shape. */
__global__ static void
copy_kernel(const float *src, float *dst, int64_t n, groma_dims4 shape, groma_dims4 ss, groma_dims4 ds)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		dst[groma_offset_of(i, n, shape, ds)] = src[groma_offset_of(i, n, shape, ss)];
}

/* Queues copy_kernel on stream over the n values of 4-d views src (strides ss) and dst (strides ds). */
static groma_status
launch_copy(const float *src, float *dst, int64_t n, groma_dims4 shape, groma_dims4 ss, groma_dims4 ds,
			cudaStream_t stream)
{
	copy_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(src, dst, n, shape, ss, ds);
	return groma_cuda_launched("copy");
}

/* copy_kernel 16 bytes at a time: shapes and strides counted in 16-byte vectors (the last dimension contiguous). */
__global__ static void
copy_vec4_kernel(const float4 *src, float4 *dst, int64_t n4, groma_dims4 shape, groma_dims4 ss, groma_dims4 ds)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n4)
		dst[groma_offset_of(i, n4, shape, ds)] = src[groma_offset_of(i, n4, shape, ss)];
}

/* Queues copy_vec4_kernel on stream over the n4 16-byte vectors of views src and dst (shape and strides in vectors). */
static groma_status
launch_copy_vec4(const float4 *src, float4 *dst, int64_t n4, groma_dims4 shape, groma_dims4 ss, groma_dims4 ds,
				 cudaStream_t stream)
{
	copy_vec4_kernel<<<groma_cuda_blocks(n4, THREADS), THREADS, 0, stream>>>(src, dst, n4, shape, ss, ds);
	return groma_cuda_launched("copy");
}

/*
 * Turns views d and e of `per` elements to 16 bytes (4 f32 or 8 of a
 * 16-bit type) into views of 16-byte vectors in place; false when the last
 * dimension or a stride does not allow it.
 */
static bool
as_vec16(groma_dims4 *shape, groma_dims4 *d, groma_dims4 *e, const void *dp, const void *ep, int per)
{
	if (shape->shape[3] % per != 0 || d->stride[3] != 1 || e->stride[3] != 1 || !groma_cuda_aligned16(dp) ||
		!groma_cuda_aligned16(ep))
		return false;
	for (int i = 0; i < 3; i++)
		if (d->stride[i] % per != 0 || e->stride[i] % per != 0)
			return false;
	shape->shape[3] /= per;
	for (int i = 0; i < 3; i++)
	{
		d->stride[i] /= per;
		e->stride[i] /= per;
	}
	return true;
}

/* dst[offset of i] = src[offset of i] converted between f32, bf16 and f16 (rounded to nearest even when narrowed). */
__global__ static void
convert_copy_kernel(const void *src, groma_dtype st, void *dst, groma_dtype dt, int64_t n, groma_dims4 shape,
					groma_dims4 ss, groma_dims4 ds)
{
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		groma_store_f32(dst, groma_offset_of(i, n, shape, ds), dt,
						groma_load_f32(src, groma_offset_of(i, n, shape, ss), st));
}

/* Queues convert_copy_kernel on stream over the n values of 4-d views src (strides ss) and dst (strides ds). */
static groma_status
launch_convert_copy(const void *src, groma_dtype st, void *dst, groma_dtype dt, int64_t n, groma_dims4 shape,
					groma_dims4 ss, groma_dims4 ds, cudaStream_t stream)
{
	convert_copy_kernel<<<groma_cuda_blocks(n, THREADS), THREADS, 0, stream>>>(src, st, dst, dt, n, shape, ss, ds);
	return groma_cuda_launched("copy (converting)");
}

/* An element type groma_copy takes: f32, bf16 or f16. */
static bool
copyable(groma_dtype t)
{
	return t == GROMA_F32 || t == GROMA_BF16 || t == GROMA_F16;
}

/*
 * Copies between strided views (contiguous ones by one device copy); host
 * sides must be contiguous and f32.  On the device the types may differ
 * (f32, bf16, f16: converted, rounded to nearest even).
 */
extern "C" groma_status
groma_cuda_copy(const groma_tensor *src, groma_tensor *dst)
{
	int64_t		n = groma_tensor_numel(src);
	groma_dims4 shape = groma_cuda_dims4(src),
				ss = groma_cuda_dims4(src),
				ds = groma_cuda_dims4(dst);

	if (!copyable(src->dtype) || !copyable(dst->dtype) || !groma_tensor_same_shape(src, dst))
		return groma_error(GROMA_ERR_INVALID_ARGUMENT, "copy: f32, bf16 or f16 tensors of the same shape only");
	if (n == 0)
		return groma_ok();
	if (src->device != dst->device)
	{
		/* host <-> device transfers: contiguous f32 only */
		if (!groma_tensor_is_contiguous(src) || !groma_tensor_is_contiguous(dst) || src->dtype != GROMA_F32 ||
			dst->dtype != GROMA_F32)
			return groma_error(GROMA_ERR_INVALID_ARGUMENT, "copy: host/device transfers need contiguous f32 tensors");
		return groma_cuda_status(cudaMemcpyAsync(dst->data, src->data, (size_t) n * sizeof(float),
												 src->device == GROMA_DEVICE_CUDA ? cudaMemcpyDeviceToHost
												 : cudaMemcpyHostToDevice, groma_cuda_stream()) == cudaSuccess
								 ? cudaStreamSynchronize(groma_cuda_stream()) : cudaGetLastError(), "copy");
	}
	if (src->dtype != dst->dtype)
		return launch_convert_copy(src->data, src->dtype, dst->data, dst->dtype, n, shape, ss, ds,
								   groma_cuda_stream());
	if (groma_tensor_is_contiguous(src) && groma_tensor_is_contiguous(dst))
		return groma_cuda_status(cudaMemcpyAsync(dst->data, src->data, (size_t) n * groma_dtype_size(src->dtype),
												 cudaMemcpyDeviceToDevice, groma_cuda_stream()), "copy");
	/* the same type, strided (a KV cache moving into a larger block): 16 bytes at a time when the views allow */
	if (as_vec16(&shape, &ss, &ds, src->data, dst->data, 16 / (int) groma_dtype_size(src->dtype)))
		return launch_copy_vec4((const float4 *) src->data, (float4 *) dst->data,
								n / (16 / (int64_t) groma_dtype_size(src->dtype)), shape, ss, ds, groma_cuda_stream());
	/* as_vec16 changed nothing: element by element */
	if (src->dtype != GROMA_F32)
		return launch_convert_copy(src->data, src->dtype, dst->data, dst->dtype, n, shape, ss, ds,
								   groma_cuda_stream());
	return launch_copy((const float *) src->data, (float *) dst->data, n, shape, ss, ds, groma_cuda_stream());
}
