/*
 * test_ops_proposal.c - the proposer's query selection as ops: top-k of
 * every row (ties by lower index, NaN first, as groma_topk), and the
 * reference boxes and sine position inputs of the chosen proposals; bad
 * arguments are refused with the shapes named.
 */
#include <math.h>
#include <string.h>

#include "unit.h"
#include "../../src/runtime/ops_spatial.h"

/* Every row's top-k equals groma_topk of that row, with ties and NaN. */
UNIT_TEST(test_topk_rows_matches_topk)
{
	float		x[2][6] = {{1.0f, 3.0f, NAN, 3.0f, -2.0f, 0.0f}, {5.0f, 5.0f, 5.0f, -INFINITY, INFINITY, -0.0f}};
	int32_t		idx[2][4];
	int64_t		want[4];
	groma_tensor xt = groma_f32_2d(&x[0][0], 2, 6),
				it = groma_tensor_view(idx, GROMA_I32, 2, (int64_t[]) {2, 4});

	CHECK(groma_topk_rows(&xt, 4, &it).code == GROMA_OK);
	for (int b = 0; b < 2; b++)
	{
		groma_tensor row = groma_f32_1d(x[b], 6);

		CHECK(groma_topk(&row, 4, want, NULL).code == GROMA_OK);
		for (int i = 0; i < 4; i++)
			CHECKF(idx[b][i] == want[i], "row %d rank %d: %d, want %lld", b, i, idx[b][i], (long long) want[i]);
	}
	CHECK(idx[0][0] == 2 && idx[0][1] == 1 && idx[0][2] == 3 && idx[0][3] == 0);
	CHECK(idx[1][0] == 4 && idx[1][1] == 0 && idx[1][2] == 1 && idx[1][3] == 2);
	/* K above N, an f32 index tensor, a wrong row count: refused */
	it.shape[1] = 7;
	CHECK(groma_topk_rows(&xt, 7, &it).code == GROMA_ERR_INVALID_ARGUMENT);
	it = groma_tensor_view(idx, GROMA_F32, 2, (int64_t[]) {2, 4});
	CHECK(groma_topk_rows(&xt, 4, &it).code == GROMA_ERR_INVALID_ARGUMENT);
	it = groma_tensor_view(idx, GROMA_I32, 2, (int64_t[]) {1, 4});
	CHECK(groma_topk_rows(&xt, 4, &it).code == GROMA_ERR_INVALID_ARGUMENT);
}

/* ref = sigmoid of the chosen logits; pos interleaves sin and cos of sigmoid · 2π / 10000^(2·floor(i/2)/F). */
UNIT_TEST(test_proposal_queries_values)
{
	float		coords[1][3][4] = {{{0.0f, 1.0f, -1.0f, 2.0f}, {3.0f, -3.0f, 0.5f, 0.25f}, {0, 0, 0, 0}}},
				ref[1][2][4],
				pos[1][2][16];
	int32_t		idx[1][2] = {{1, 0}};
	groma_tensor ct = groma_tensor_view(coords, GROMA_F32, 3, (int64_t[]) {1, 3, 4}),
				it = groma_tensor_view(idx, GROMA_I32, 2, (int64_t[]) {1, 2}),
				rt = groma_tensor_view(ref, GROMA_F32, 3, (int64_t[]) {1, 2, 4}),
				pt = groma_tensor_view(pos, GROMA_F32, 3, (int64_t[]) {1, 2, 16});

	CHECK(groma_proposal_queries(&ct, &it, &rt, &pt).code == GROMA_OK);
	for (int q = 0; q < 2; q++)
		for (int c = 0; c < 4; c++)
		{
			float		logit = coords[0][idx[0][q]][c],
						s = 1.0f / (1.0f + expf(-logit));

			CHECKF(ref[0][q][c] == s, "ref %d %d", q, c);
			for (int i = 0; i < 4; i++)
			{
				float		dim_t = powf(10000.0f, (float) (2 * (i / 2)) / 4.0f),
							v = s * 2.0f * (float) M_PI / dim_t;

				CHECKF(fabsf(pos[0][q][c * 4 + i] - (i % 2 ? cosf(v) : sinf(v))) < 1e-6f, "pos %d %d %d", q, c, i);
			}
		}
	/* an index outside the proposals is refused */
	idx[0][1] = 3;
	CHECK(groma_proposal_queries(&ct, &it, &rt, &pt).code == GROMA_ERR_INVALID_ARGUMENT);
	idx[0][1] = 0;
	pt.shape[2] = 15;
	CHECK(groma_proposal_queries(&ct, &it, &rt, &pt).code == GROMA_ERR_INVALID_ARGUMENT);
}
