/*
 * test_ops_spatial_golden.c - helpers shared by the spatial op tests (see
 * test_ops_spatial_golden.h).
 */
#include "test_ops_spatial_golden.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

/* Opens test/golden/compact/ops.safetensors. */
groma_st_file *
spatial_golden_open(void)
{
	groma_st_file *f = NULL;
	groma_status st = groma_st_open(unit_path("test/golden/compact/ops.safetensors"), &f);

	CHECKF(st.code == GROMA_OK, "ops golden: %s", st.message);
	return f;
}

/* Copies a tensor of dtype into malloc'd memory after checking it; *numel gets its element count. */
static void *
golden_copy(const groma_st_file *f, const char *name, groma_st_dtype dtype, int64_t *numel)
{
	groma_st_tensor t;
	groma_status st;
	int64_t		n = 1;
	void	   *copy;

	*numel = 0;
	if (f == NULL)
		return NULL;
	st = groma_st_get(f, name, &t);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (st.code != GROMA_OK)
		return NULL;
	CHECKF(t.dtype == dtype, "%s is %s, expected %s", name, groma_st_dtype_name(t.dtype),
		   groma_st_dtype_name(dtype));
	if (t.dtype != dtype)
		return NULL;
	for (int d = 0; d < t.ndim; d++)
		n *= t.shape[d];
	copy = malloc(t.nbytes > 0 ? t.nbytes : 1);
	if (copy == NULL)
		return NULL;
	memcpy(copy, t.data, t.nbytes);	/* tensor data in the file may be unaligned */
	*numel = n;
	return copy;
}

/* Returns an aligned copy of an F32 golden tensor of expect_numel elements. */
float *
spatial_golden_f32(const groma_st_file *f, const char *name, int64_t expect_numel)
{
	int64_t		n;
	float	   *x = golden_copy(f, name, GROMA_ST_F32, &n);

	if (x != NULL && expect_numel >= 0 && n != expect_numel)
	{
		unit_fail(__FILE__, __LINE__, "%s has %lld elements, expected %lld", name, (long long) n,
				  (long long) expect_numel);
		free(x);
		return NULL;
	}
	return x;
}

/* Returns an aligned copy of an I64 golden tensor. */
int64_t *
spatial_golden_i64(const groma_st_file *f, const char *name, int64_t *numel)
{
	return golden_copy(f, name, GROMA_ST_I64, numel);
}

/* Checks got against want within atol + rtol·|want|; notes and returns the max abs error. */
double
spatial_expect_close(const char *label, const float *got, const float *want, int64_t n, double atol, double rtol)
{
	double		worst = 0.0;
	int64_t		bad = 0,
				first = -1;

	if (got == NULL || want == NULL)
	{
		unit_fail(__FILE__, __LINE__, "%s: nothing to compare", label);
		return INFINITY;
	}
	for (int64_t i = 0; i < n; i++)
	{
		double		g = got[i],
					w = want[i];
		double		err = fabs(g - w);
		bool		same_special = (isnan(g) && isnan(w)) || (isinf(g) && g == w);

		if (same_special)
			continue;
		if (isnan(err))
			err = INFINITY;
		if (err > worst)
			worst = err;
		if (!(err <= atol + rtol * fabs(w)))
		{
			if (first < 0)
				first = i;
			bad++;
		}
	}
	unit_note("%s: max abs error %.3g over %lld values", label, worst, (long long) n);
	if (bad)
		unit_fail(__FILE__, __LINE__, "%s: %lld values off (atol %g, rtol %g); first at %lld: %.9g vs %.9g",
				  label, (long long) bad, atol, rtol, (long long) first, (double) got[first],
				  (double) want[first]);
	return worst;
}

/* Reads a little-endian unsigned integer of n bytes. */
static uint64_t
le(const uint8_t *p, int n)
{
	uint64_t	v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Returns a copy of a stored zip entry.  Written by hand because the tests
 * need one tensor of a PyTorch checkpoint (a zip of raw storages) and
 * groma's own checkpoint reader is not the subject here; entries are found
 * through the central directory since PyTorch leaves sizes out of the local
 * headers.
 */
uint8_t *
spatial_zip_entry(const char *path, const char *entry, size_t *size)
{
	size_t		len,
				name_len = strlen(entry);
	uint8_t    *zip = unit_read_file(path, &len);
	uint8_t    *out = NULL;
	size_t		eocd = 0,
				cd,
				count;

	*size = 0;
	if (zip == NULL)
		return NULL;
	for (size_t i = len >= 22 ? len - 22 : 0; i > 0 && len - i < 22 + 65536; i--)
		if (le(zip + i, 4) == 0x06054b50)
		{
			eocd = i;
			break;
		}
	CHECKF(eocd > 0, "%s: no zip end record", path);
	if (eocd == 0)
		goto done;
	count = (size_t) le(zip + eocd + 10, 2);
	cd = (size_t) le(zip + eocd + 16, 4);
	for (size_t k = 0; k < count && cd + 46 <= len && le(zip + cd, 4) == 0x02014b50; k++)
	{
		size_t		nlen = (size_t) le(zip + cd + 28, 2),
					xlen = (size_t) le(zip + cd + 30, 2),
					clen = (size_t) le(zip + cd + 32, 2);

		if (nlen == name_len && cd + 46 + nlen <= len && memcmp(zip + cd + 46, entry, nlen) == 0)
		{
			size_t		method = (size_t) le(zip + cd + 10, 2),
						csize = (size_t) le(zip + cd + 20, 4),
						local = (size_t) le(zip + cd + 42, 4),
						data;

			CHECKF(method == 0 && local + 30 <= len, "%s: entry %s is compressed or out of range", path, entry);
			if (method != 0 || local + 30 > len)
				goto done;
			data = local + 30 + (size_t) le(zip + local + 26, 2) + (size_t) le(zip + local + 28, 2);
			CHECKF(data + csize <= len, "%s: entry %s runs past the end", path, entry);
			if (data + csize > len)
				goto done;
			out = malloc(csize > 0 ? csize : 1);
			if (out)
			{
				memcpy(out, zip + data, csize);
				*size = csize;
			}
			goto done;
		}
		cd += 46 + nlen + xlen + clen;
	}
	unit_fail(__FILE__, __LINE__, "%s: no entry %s", path, entry);
done:
	free(zip);
	return out;
}
