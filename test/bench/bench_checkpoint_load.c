/*
 * bench_checkpoint_load.c - how fast a PyTorch zip checkpoint loads,
 * next to plain `cat FILE > /dev/null` on the same file.
 *
 *   build/bench/bench_checkpoint_load [GB] [DIR]      (default 2 GB, /tmp/groma-bench-ckpt)
 *
 * Writes DIR/pytorch_model.bin in the real release format (ZIP64, stored
 * entries aligned like torch.save, a protocol-2 state dict of 64 MiB f32
 * tensors plus aliasing views), then measures, with the page cache dropped
 * before each cold run when the kernel lets us (root: /proc/sys/vm/drop_caches):
 * cat, groma_checkpoint_open + touching one byte per 4 KiB of every tensor,
 * and the same after groma_checkpoint_prefetch.  Prints figures; not a test.
 * The file is deleted at the end unless GROMA_BENCH_KEEP is set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../unit/ckpt_fixture.c"
#include "../../src/io/checkpoint.h"

#define TENSOR_BYTES (64u << 20)
#define CHUNK_BYTES (8u << 20)

/* Returns monotonic seconds. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Writes the checkpoint: count storages of TENSOR_BYTES, each named by one tensor and one view. */
static int
write_checkpoint(const char *path, int count)
{
	fx_tensor  *tensors = calloc((size_t) count * 2, sizeof(fx_tensor));
	char	  (*names)[64] = calloc((size_t) count * 3, 64);
	float	   *chunk = malloc(CHUNK_BYTES);
	fx_pickle	p = {0};
	fx_zip	   *z = fx_zip_create(path, true);
	int64_t		numel = TENSOR_BYTES / 4;
	int			ok = z != NULL && tensors && names && chunk;

	for (int i = 0; ok && i < count; i++)
	{
		snprintf(names[3 * i], 64, "layers.%d.weight", i);
		snprintf(names[3 * i + 1], 64, "layers.%d.weight_rows", i);
		snprintf(names[3 * i + 2], 64, "%d", i);
		tensors[2 * i] = (fx_tensor) {names[3 * i], "FloatStorage", names[3 * i + 2], numel, 0, 2,
		{4096, numel / 4096}, {numel / 4096, 1}};
		/* An aliasing view: the second half of the rows. */
		tensors[2 * i + 1] = (fx_tensor) {names[3 * i + 1], "FloatStorage", names[3 * i + 2], numel,
		numel / 2, 2, {2048, numel / 4096}, {numel / 4096, 1}};
	}
	if (ok)
	{
		fx_pk_state_dict(&p, tensors, count * 2);
		ok = fx_zip_add(z, "pytorch_model/data.pkl", p.data, p.len) &&
			fx_zip_add(z, "pytorch_model/byteorder", "little", 6);
	}
	for (size_t k = 0; chunk && k < CHUNK_BYTES / 4; k++)
		chunk[k] = (float) (k % 9973) * 1e-3f;
	for (int i = 0; ok && i < count; i++)
	{
		char		name[96];

		snprintf(name, sizeof(name), "pytorch_model/data/%d", i);
		ok = fx_zip_begin(z, name, 0);
		for (size_t done = 0; ok && done < TENSOR_BYTES; done += CHUNK_BYTES)
		{
			chunk[0] = (float) i;	/* not every storage identical */
			ok = fx_zip_write(z, chunk, CHUNK_BYTES);
		}
		ok = ok && fx_zip_end(z);
	}
	ok = ok && fx_zip_add(z, "pytorch_model/version", "3\n", 2);
	if (z != NULL)
		ok = fx_zip_finish(z) && ok;
	fx_pk_free(&p);
	free(tensors);
	free(names);
	free(chunk);
	return ok;
}

/* Drops the page cache; returns 0 (with a note) when the kernel refuses. */
static int
drop_caches(void)
{
	FILE	   *f;

	sync();
	f = fopen("/proc/sys/vm/drop_caches", "w");
	if (f == NULL || fputs("1\n", f) == EOF)
	{
		if (f)
			fclose(f);
		return 0;
	}
	return fclose(f) == 0;
}

/* Times `cat path > /dev/null`; returns seconds, or -1 on failure. */
static double
time_cat(const char *path)
{
	char		cmd[4200];
	double		t0 = now();

	snprintf(cmd, sizeof(cmd), "cat '%s' > /dev/null", path);
	if (system(cmd) != 0)
		return -1;
	return now() - t0;
}

/* Opens the checkpoint and touches one byte per 4 KiB of every tensor; returns seconds (open time in *open_s). */
static double
time_load(const char *path, int prefetch, double *open_s, unsigned long *checksum)
{
	groma_checkpoint *ckpt = NULL;
	double		t0 = now();
	groma_status st = groma_checkpoint_open(path, &ckpt);
	unsigned long sum = 0;

	if (st.code != GROMA_OK)
	{
		fprintf(stderr, "open failed: %s\n", st.message);
		return -1;
	}
	*open_s = now() - t0;
	if (prefetch)
		groma_checkpoint_prefetch(ckpt);
	for (size_t i = 0; i < groma_checkpoint_count(ckpt); i++)
	{
		const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(ckpt, i);
		const volatile uint8_t *p = t->data;
		size_t		bytes = (size_t) groma_ckpt_tensor_numel(t) * groma_st_dtype_size(t->dtype);

		for (size_t off = 0; off < bytes; off += 4096)
			sum += p[off];
	}
	groma_checkpoint_close(ckpt);
	*checksum = sum;
	return now() - t0;
}

/* Prints one result line. */
static void
report(const char *what, double seconds, double gb, double cat_seconds)
{
	if (seconds < 0)
	{
		printf("  %-30s failed\n", what);
		return;
	}
	printf("  %-30s %7.3f s  %6.2f GB/s", what, seconds, gb / seconds);
	if (cat_seconds > 0)
		printf("  (%.2fx cat's time)", seconds / cat_seconds);
	printf("\n");
}

/* Runs the benchmark. */
int
main(int argc, char **argv)
{
	double		gb_wanted = argc > 1 ? atof(argv[1]) : 2.0;
	const char *dir = argc > 2 ? argv[2] : "/tmp/groma-bench-ckpt";
	int			count = (int) (gb_wanted * 1e9 / TENSOR_BYTES + 0.5);
	char		path[4096];
	struct stat sb;
	double		t0,
				gb,
				open_s = 0,
				cat_cold,
				cat_warm,
				load_cold,
				load_prefetch,
				load_warm;
	unsigned long sum = 0;
	int			can_drop;

	if (count < 1)
		count = 1;
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/pytorch_model.bin", dir);
	t0 = now();
	if (!write_checkpoint(path, count) || stat(path, &sb) != 0)
	{
		fprintf(stderr, "cannot write %s\n", path);
		return 1;
	}
	gb = (double) sb.st_size / 1e9;
	printf("checkpoint %s: %.2f GB, %d storages of 64 MiB, %d tensors (half of them aliasing views), written in %.1f s\n",
		   path, gb, count, 2 * count, now() - t0);
	can_drop = drop_caches();
	if (!can_drop)
		printf("note: cannot drop the page cache (not root?): the cold figures below are warm-cache\n");
	cat_cold = time_cat(path);
	drop_caches();
	load_cold = time_load(path, 0, &open_s, &sum);
	drop_caches();
	load_prefetch = time_load(path, 1, &open_s, &sum);
	cat_warm = time_cat(path);
	load_warm = time_load(path, 0, &open_s, &sum);
	printf("%s page cache (each run after a drop):\n", can_drop ? "cold" : "warm");
	report("cat FILE > /dev/null", cat_cold, gb, 0);
	report("groma open + touch", load_cold, gb, cat_cold);
	report("groma open + prefetch + touch", load_prefetch, gb, cat_cold);
	printf("warm page cache:\n");
	report("cat FILE > /dev/null", cat_warm, gb, 0);
	report("groma open + touch", load_warm, gb, cat_warm);
	printf("open alone (directory + data.pkl, warm): %.2f ms; checksum %lu\n", open_s * 1e3, sum);
	if (getenv("GROMA_BENCH_KEEP") == NULL)
		unlink(path);			/* GROMA_BENCH_KEEP=1 keeps the file */
	return 0;
}
