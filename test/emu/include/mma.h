/*
 * mma.h - the CPU emulator stands in for the CUDA header of this name: the
 * warp matrix functions (nvcuda::wmma) for 16x16x16 tiles of bf16 or f16
 * with f32 accumulators.  Every lane of a warp holds the whole tile and
 * does the whole product (the hardware spreads them over the lanes in an
 * unspecified layout, so kernels may only load, multiply, fill and store
 * fragments, never index them); the products are exact in f32 and summed
 * in k order.
 */
#ifndef GROMA_EMU_MMA_H
#define GROMA_EMU_MMA_H

#include <cstdio>

#include "../emu_cuda.h"

namespace nvcuda
{
namespace wmma
{
	struct matrix_a {};
	struct matrix_b {};
	struct accumulator {};
	struct row_major {};
	struct col_major {};
	enum layout_t
	{
		mem_row_major,
		mem_col_major
	};

	/* The f32 value of one 16-bit element. */
	static inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
	static inline float widen(__half v) { return __half2float(v); }
	static inline float widen(float v) { return v; }

	/* One tile, held whole (row-major, as values of the element type's precision widened to f32). */
	template <typename Use, int M, int N, int K, typename T, typename Layout = void>
	struct fragment
	{
		static_assert(M == 16 && N == 16 && K == 16, "the emulator has 16x16x16 tiles only");
		float		v[16][16];
	};

	/* Breaks the context when a tile at p (ldm elements of `size` bytes apart) breaks the alignment rules. */
	static inline void
	check_tile(const char *call, const void *p, unsigned ldm, size_t size)
	{
		if (((uintptr_t) p & 31) == 0 && (ldm * size) % 16 == 0)
			return;
		fprintf(stderr, "groma CUDA emulator: %s: tile %p with leading dimension %u is not 32-byte aligned with "
				"rows a multiple of 16 bytes apart; a GPU faults\n", call, p, ldm);
		groma_emu_illegal_address();
	}

	/* A (row i, column j) element read from p with leading dimension ldm in Layout. */
	template <typename Layout, typename T>
	static inline float
	element(const T *p, unsigned ldm, int i, int j)
	{
		return widen(std::is_same<Layout, row_major>::value ? p[i * ldm + j] : p[j * ldm + i]);
	}

	template <typename Use, typename T, typename Layout>
	static inline void
	load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout> &f, const T *p, unsigned ldm)
	{
		check_tile("wmma::load_matrix_sync", p, ldm, sizeof(T));
		for (int i = 0; i < 16; i++)
			for (int j = 0; j < 16; j++)
				f.v[i][j] = element<Layout>(p, ldm, i, j);
	}

	static inline void
	load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm, layout_t layout)
	{
		check_tile("wmma::load_matrix_sync", p, ldm, sizeof(float));
		for (int i = 0; i < 16; i++)
			for (int j = 0; j < 16; j++)
				f.v[i][j] = layout == mem_row_major ? p[i * ldm + j] : p[j * ldm + i];
	}

	static inline void
	store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t layout)
	{
		check_tile("wmma::store_matrix_sync", p, ldm, sizeof(float));
		for (int i = 0; i < 16; i++)
			for (int j = 0; j < 16; j++)
				(layout == mem_row_major ? p[i * ldm + j] : p[j * ldm + i]) = f.v[i][j];
	}

	template <typename Use, typename T, typename Layout>
	static inline void
	fill_fragment(fragment<Use, 16, 16, 16, T, Layout> &f, float value)
	{
		for (int i = 0; i < 16; i++)
			for (int j = 0; j < 16; j++)
				f.v[i][j] = value;
	}

	/* d = a · b + c, each product exact in f32, summed in k order. */
	template <typename T, typename LA, typename LB>
	static inline void
	mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, T, LA> &a,
			 const fragment<matrix_b, 16, 16, 16, T, LB> &b, const fragment<accumulator, 16, 16, 16, float> &c)
	{
		float		out[16][16];

		for (int i = 0; i < 16; i++)
			for (int j = 0; j < 16; j++)
			{
				float		s = c.v[i][j];

				for (int k = 0; k < 16; k++)
					s += a.v[i][k] * b.v[k][j];
				out[i][j] = s;
			}
		std::memcpy(d.v, out, sizeof(out));
	}
}
}

#endif							/* GROMA_EMU_MMA_H */
