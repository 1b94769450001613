/*
 * test_emulator.cu - the CUDA emulator's own checks, so a kernel bug it
 * exists to catch cannot pass unnoticed: block and warp reductions give
 * the right sums, 2-D grids index like CUDA, and each misuse is reported
 * (an invalid configuration, a host pointer argument, a read past an
 * allocation, a __syncthreads some threads skip, a copy out of bounds,
 * running out of device memory, a sticky fault, a misaligned warp-matrix
 * tile); warp matrix products equal the plain ones.  The crashing cases run in
 * a child process whose diagnosis is checked.
 *
 * Built only for the emulator (make emu); compiled with g++ like kernels/.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "../gpu/tap_check.h"

/* out[block] = sum over the block of (threadIdx.x + 1), by warp shuffles and shared memory. */
__global__ static void
block_sum_kernel(float *out)
{
	__shared__ float partial[32];
	float		v = (float) threadIdx.x + 1.0f;

	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	if ((threadIdx.x & 31) == 0)
		partial[threadIdx.x >> 5] = v;
	__syncthreads();
	if (threadIdx.x == 0)
	{
		float		s = 0;

		for (unsigned w = 0; w < blockDim.x / 32; w++)
			s += partial[w];
		out[blockIdx.x] = s;
	}
}

/* out[y][x] = y * 1000 + x over a 2-D grid of 2-D blocks. */
__global__ static void
index_kernel(int *out, int width, int height)
{
	int			x = blockIdx.x * blockDim.x + threadIdx.x;
	int			y = blockIdx.y * blockDim.y + threadIdx.y;

	if (x < width && y < height)
		out[y * width + x] = y * 1000 + x;
}

/* Reads element n of p (a bug when p holds n elements). */
__global__ static void
read_past_kernel(const float *p, int n, float *out)
{
	out[0] = p[n + threadIdx.x];
}

/* Threads past `live` return before the barrier the others wait at. */
__global__ static void
divergent_barrier_kernel(float *out, int live)
{
	if ((int) threadIdx.x >= live)
		return;
	__syncthreads();
	out[threadIdx.x] = 1.0f;
}

/* c[16][16] = a[16][16] · b (b read column-major: b[j][k] is element (k, j)) by one warp's matrix functions, with ldm as given. */
__global__ static void
tile_product_kernel(const __nv_bfloat16 *a, const __nv_bfloat16 *b, float *c, unsigned ldm)
{
	nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major> fa;
	nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::col_major> fb;
	nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> fc;

	nvcuda::wmma::fill_fragment(fc, 0.0f);
	nvcuda::wmma::load_matrix_sync(fa, a, ldm);
	nvcuda::wmma::load_matrix_sync(fb, b, ldm);
	nvcuda::wmma::mma_sync(fc, fa, fb, fc);
	nvcuda::wmma::store_matrix_sync(c, fc, 16, nvcuda::wmma::mem_row_major);
}

/* Runs fn in a child process; returns its stderr and sets *crashed when it died of a signal. */
static std::string
in_child(void (*fn) (void), bool *crashed)
{
	int			fds[2];
	pid_t		pid;
	std::string err;
	char		buf[512];
	ssize_t		n;
	int			status = 0;

	if (pipe(fds) != 0)
		return "pipe failed";
	fflush(stdout);
	pid = fork();
	if (pid == 0)
	{
		alarm(60);				/* a hang (a deadlocked pool) ends as a crash, not a stuck test */
		dup2(fds[1], 2);
		close(fds[0]);
		fn();
		_exit(0);
	}
	close(fds[1]);
	while ((n = read(fds[0], buf, sizeof(buf))) > 0)
		err.append(buf, (size_t) n);
	close(fds[0]);
	waitpid(pid, &status, 0);
	*crashed = WIFSIGNALED(status);
	return err;
}

/* Child: a warp-matrix tile whose rows are 12 elements (24 bytes) apart. */
static void
child_misaligned_tile(void)
{
	__nv_bfloat16 *t;
	float	   *c;

	cudaMalloc((void **) &t, 16 * 16 * sizeof(*t));
	cudaMalloc((void **) &c, 16 * 16 * sizeof(float));
	tile_product_kernel<<<1, 32>>>(t, t, c, 12);
	fprintf(stderr, "last error %d\n", (int) cudaGetLastError());
}

/* Child: a kernel reads one element past a 100-float allocation. */
static void
child_read_past(void)
{
	float	   *p,
			   *out;

	cudaMalloc((void **) &p, 100 * sizeof(float));
	cudaMalloc((void **) &out, sizeof(float));
	read_past_kernel<<<1, 32>>>(p, 100, out);
}

/* Child: a 3-block launch after the parent started its worker threads (the child has none of them). */
static void
child_many_blocks(void)
{
	float	   *sums,
				host[3] = {0, 0, 0};

	cudaMalloc((void **) &sums, sizeof(host));
	block_sum_kernel<<<3, 256>>>(sums);
	cudaMemcpy(host, sums, sizeof(host), cudaMemcpyDeviceToHost);
	fprintf(stderr, "sums %g %g %g\n", host[0], host[1], host[2]);
}

/* Child: a barrier only half the block reaches. */
static void
child_divergent(void)
{
	float	   *out;

	cudaMalloc((void **) &out, 64 * sizeof(float));
	divergent_barrier_kernel<<<1, 64>>>(out, 32);
}

int
main(void)
{
	float	   *sums,
				host[3];
	int		   *grid_out,
				host_grid[37 * 21];
	bool		ok = true,
				crashed;
	std::string err;

	cudaMalloc((void **) &sums, 3 * sizeof(float));
	block_sum_kernel<<<3, 256>>>(sums);
	check(cudaGetLastError() == cudaSuccess &&
		  cudaMemcpy(host, sums, sizeof(host), cudaMemcpyDeviceToHost) == cudaSuccess &&
		  host[0] == 32896.0f && host[2] == 32896.0f, "a shuffle + shared-memory block sum of 1..256 is 32896");

	cudaMalloc((void **) &grid_out, sizeof(host_grid));
	index_kernel<<<dim3(3, 3), dim3(16, 8)>>>(grid_out, 37, 21);
	cudaMemcpy(host_grid, grid_out, sizeof(host_grid), cudaMemcpyDeviceToHost);
	for (int y = 0; y < 21; y++)
		for (int x = 0; x < 37; x++)
			ok = ok && host_grid[y * 37 + x] == y * 1000 + x;
	check(ok, "a 2-D grid of 2-D blocks covers [21][37] with CUDA's indices");

	block_sum_kernel<<<1, 2048>>>(sums);
	check(cudaGetLastError() == cudaErrorInvalidConfiguration, "a block of 2048 threads is an invalid configuration");
	check(cudaGetLastError() == cudaSuccess, "which cudaGetLastError clears (not sticky)");

	check(cudaMemcpy(host, sums, 4 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue,
		  "a copy of 4 floats out of a 3-float allocation is refused");
	(void) cudaGetLastError();

	{
		void	   *big = NULL;

		check(cudaMalloc(&big, (size_t) 1 << 50) == cudaErrorMemoryAllocation && big == NULL,
			  "an allocation larger than the device is cudaErrorMemoryAllocation");
		(void) cudaGetLastError();
	}

	err = in_child(child_many_blocks, &crashed);
	check(!crashed && err.find("sums 32896 32896 32896") != std::string::npos,
		  "a forked child runs multi-block launches (its own worker threads)");

	err = in_child(child_read_past, &crashed);
	check(crashed && err.find("read_past_kernel") != std::string::npos &&
		  err.find("bytes past the end of a 400-byte allocation") != std::string::npos,
		  "a read past an allocation stops the process naming the kernel and the allocation");
	if (!crashed || err.find("past the end") == std::string::npos)
		fprintf(stdout, "# child said: %s\n", err.c_str());

	err = in_child(child_divergent, &crashed);
	check(crashed && err.find("__syncthreads") != std::string::npos &&
		  err.find("divergent_barrier_kernel") != std::string::npos,
		  "a __syncthreads that half the block skips is reported");
	if (!crashed)
		fprintf(stdout, "# child said: %s\n", err.c_str());

	{
		/* small integers: every product and sum is exact, so the tile equals the plain product */
		__nv_bfloat16 ha[256],
					hb[256],
				   *da,
				   *db;
		float		hc[256],
				   *dc;
		bool		same = true;

		for (int i = 0; i < 256; i++)
		{
			ha[i] = __float2bfloat16_rn((float) (i % 7) - 3.0f);
			hb[i] = __float2bfloat16_rn((float) (i % 5) - 2.0f);
		}
		cudaMalloc((void **) &da, sizeof(ha));
		cudaMalloc((void **) &db, sizeof(hb));
		cudaMalloc((void **) &dc, sizeof(hc));
		cudaMemcpy(da, ha, sizeof(ha), cudaMemcpyHostToDevice);
		cudaMemcpy(db, hb, sizeof(hb), cudaMemcpyHostToDevice);
		tile_product_kernel<<<1, 32>>>(da, db, dc, 16);
		same = cudaMemcpy(hc, dc, sizeof(hc), cudaMemcpyDeviceToHost) == cudaSuccess;
		for (int i = 0; i < 16 && same; i++)
			for (int j = 0; j < 16; j++)
			{
				float		sum = 0.0f;

				for (int k = 0; k < 16; k++)
					sum += __bfloat162float(ha[i * 16 + k]) * __bfloat162float(hb[j * 16 + k]);
				same = same && hc[i * 16 + j] == sum;
			}
		check(same, "a warp-matrix product of two bf16 tiles (b column-major) equals the plain product");
	}

	err = in_child(child_misaligned_tile, &crashed);
	check(err.find("wmma::load_matrix_sync") != std::string::npos &&
		  err.find(std::string("last error ") + std::to_string((int) cudaErrorIllegalAddress)) != std::string::npos,
		  "a warp-matrix tile whose rows are 24 bytes apart breaks the context, as on a GPU");
	if (err.find("wmma") == std::string::npos)
		fprintf(stdout, "# child said: %s\n", err.c_str());

	{
		float		on_host[4];

		block_sum_kernel<<<1, 32>>>(on_host);
		check(cudaGetLastError() == cudaErrorIllegalAddress, "a host pointer as a kernel argument is an illegal address");
		check(cudaMalloc((void **) &grid_out, 16) == cudaErrorIllegalAddress && cudaGetLastError() != cudaSuccess,
			  "which is sticky: later calls fail too");
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
