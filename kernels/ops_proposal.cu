/*
 * ops_proposal.cu - the two-stage proposer's query selection on the GPU,
 * so vision makes no host round trip between the encoder and the decoder:
 * the top-k proposals of every image by rank counting, and the reference
 * boxes and sine position inputs of the chosen ones.  Each kernel has a
 * launcher taking a stream, the entry points check and pass theirs.  CPU
 * twins: src/runtime/op_proposal_queries_cpu.c.
 */
#include "cuda_common.h"

#define TOPK_THREADS 512
#define TOPK_STAGED_MAX 8192	/* values of a row staged in shared memory (32 KB) */

/* True when value vj at index j ranks before vi at index i: NaN first, then larger, then lower index. */
__device__ static inline bool
ranks_before(float vj, int64_t j, float vi, int64_t i)
{
	bool		nj = isnan(vj),
				ni = isnan(vi);

	if (nj != ni)
		return nj;
	if (!nj && vj != vi)
		return vj > vi;
	return j < i;
}

/*
 * indices[b, r] = the index of row b's value of rank r < k: every value
 * counts the values ranking before it (a block per row, the row staged in
 * shared memory when it fits); ranks are distinct, so each slot gets one.
 */
__global__ static void
topk_rows_kernel(const float *x, int64_t n, int k, int32_t *indices, bool staged)
{
	__shared__ float staged_row[TOPK_STAGED_MAX];
	const float *row = x + (int64_t) blockIdx.x * n;

	if (staged)
	{
		for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
			staged_row[j] = row[j];
		__syncthreads();
		row = staged_row;
	}
	for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
	{
		float		vi = row[i];
		int64_t		rank = 0;

		for (int64_t j = 0; j < n && rank < k; j++)
			rank += ranks_before(row[j], j, vi, i);
		if (rank < k)
			indices[(int64_t) blockIdx.x * k + rank] = (int32_t) i;
	}
}

/* Queues topk_rows_kernel on stream: indices[batch, k] of the top k of each row of x[batch, n]. */
static groma_status
launch_topk_rows(const float *x, int64_t batch, int64_t n, int k, int32_t *indices, bool staged, cudaStream_t stream)
{
	topk_rows_kernel<<<(unsigned) batch, TOPK_THREADS, 0, stream>>>(x, n, k, indices, staged);
	return groma_cuda_launched("topk_rows");
}

/* The top-k of every row on the GPU; see ops_spatial.h. */
extern "C" groma_status
groma_cuda_topk_rows(const groma_tensor *x, int k, groma_tensor *indices)
{
	int64_t		batch,
				n;
	bool		staged;

	GROMA_TRY(groma_topk_rows_check(x, k, indices));
	batch = x->shape[0];
	n = x->shape[1];
	if (batch == 0 || k == 0)
		return groma_ok();
	staged = n <= TOPK_STAGED_MAX;
	return launch_topk_rows((const float *) x->data, batch, n, k, (int32_t *) indices->data, staged,
							groma_cuda_stream());
}

/*
 * For query q = blockIdx.x of image b = blockIdx.y: ref[b, q] = sigmoid of
 * the chosen proposal's 4 logits, pos[b, q, c·F + i] = sin (even i) or cos
 * (odd i) of sigmoid(logit c) · 2π / 10000^(2·floor(i/2)/F); a thread per
 * output value.  An index outside [0, n) (the CPU twin refuses it; here it
 * would need a round trip to report) reads nothing and gives NaN rows.
 */
__global__ static void
proposal_queries_kernel(const float *coords, int64_t n, const int32_t *indices, int64_t k, int64_t feats,
						float *ref, float *pos)
{
	int64_t		q = blockIdx.x,
				b = blockIdx.y,
				row = b * k + q;
	int32_t		i = indices[row];
	const float *src;

	if (i < 0 || i >= n)
	{
		for (int64_t t = threadIdx.x; t < 4 * feats; t += blockDim.x)
			pos[row * 4 * feats + t] = NAN;
		if (threadIdx.x < 4)
			ref[row * 4 + threadIdx.x] = NAN;
		return;
	}
	src = coords + (b * n + i) * 4;
	if (threadIdx.x < 4)
		ref[row * 4 + threadIdx.x] = 1.0f / (1.0f + expf(-src[threadIdx.x]));
	for (int64_t t = threadIdx.x; t < 4 * feats; t += blockDim.x)
	{
		int64_t		c = t / feats,
					f = t % feats;
		float		v = 1.0f / (1.0f + expf(-src[c])) * (2.0f * 3.14159265358979323846f),
					dim_t = powf(10000.0f, (float) (2 * (f / 2)) / (float) feats);

		pos[row * 4 * feats + t] = (f % 2 == 0) ? sinf(v / dim_t) : cosf(v / dim_t);
	}
}

/*
 * Queues proposal_queries_kernel on stream: ref[batch, k, 4] and pos[batch,
 * k, 4 · feats] from coords[batch, n, 4] at indices[batch, k].
 */
static groma_status
launch_proposal_queries(const float *coords, int64_t n, const int32_t *indices, int64_t batch, int64_t k,
						int64_t feats, float *ref, float *pos, cudaStream_t stream)
{
	proposal_queries_kernel<<<dim3((unsigned) k, (unsigned) batch), 128, 0, stream>>>(
		coords, n, indices, k, feats, ref, pos);
	return groma_cuda_launched("proposal_queries");
}

/* The proposer's queries from the chosen proposals on the GPU; see ops_spatial.h. */
extern "C" groma_status
groma_cuda_proposal_queries(const groma_tensor *coords, const groma_tensor *indices, groma_tensor *ref,
							groma_tensor *pos)
{
	int64_t		batch,
				k;

	GROMA_TRY(groma_proposal_queries_check(coords, indices, ref, pos));
	batch = coords->shape[0];
	k = indices->shape[1];
	if (batch == 0 || k == 0)
		return groma_ok();
	return launch_proposal_queries((const float *) coords->data, coords->shape[1], (const int32_t *) indices->data,
								   batch, k, pos->shape[2] / 4, (float *) ref->data, (float *) pos->data,
								   groma_cuda_stream());
}
