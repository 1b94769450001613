/*
 * groma_server.c - main() of groma-server: argument parsing and dispatch.
 *
 * The socket server that PostgreSQL talks to comes later; today groma-server
 * is the command-line tool that runs the same library code as the extension.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define GROMA_VERSION "0.1"

/* Prints usage to f. */
static void
usage(FILE *f)
{
	fprintf(f,
			"usage: groma-server --decode IMG.jpg --out FILE.safetensors [--device cpu|cuda]\n"
			"       groma-server --info IMG.jpg\n"
			"       groma-server --model DIR --regions IMG.jpg [--refer x1,y1,x2,y2]... [--device cpu|cuda]\n"
			"       groma-server --model DIR --image IMG.jpg (--prompt TEXT | --task caption|caption-detailed|ground|describe)\n"
			"                    [--phrase TEXT] [--refer x1,y1,x2,y2]... [--max-new-tokens N] [--device cpu|cuda]\n"
			"       groma-server --bench --random-weights --config real|FILE [--device cpu|cuda]\n"
			"       groma-server --device-info\n"
			"       groma-server --version | --help\n"
			"options:\n"
			"  --max-image-pixels N   refuse images with more pixels (default %ld)\n"
			"  --weights f32|bf16|f16 linear-layer weights on the GPU (default bf16; the CPU uses f32)\n",
			(long) GROMA_DEFAULT_MAX_IMAGE_PIXELS);
}

/* Parses a positive integer option value; returns 0 on success. */
static int
parse_positive_long(const char *text, long *out)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v <= 0)
		return -1;
	*out = v;
	return 0;
}

/* Entry point: exit 0 on success, 1 when the work failed, 2 on a usage error. */
int
main(int argc, char **argv)
{
	groma_cli_options opt;
	const char *command = NULL;

	memset(&opt, 0, sizeof(opt));
	opt.device = "cpu";
	opt.max_new_tokens = 256;
	opt.limits = groma_jpeg_default_limits();

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		int			has_value = i + 1 < argc;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
		{
			usage(stdout);
			return 0;
		}
		else if (strcmp(a, "--version") == 0)
		{
			printf("groma-server %s\n", GROMA_VERSION);
			return 0;
		}
		else if ((strcmp(a, "--decode") == 0 || strcmp(a, "--info") == 0 ||
				  strcmp(a, "--regions") == 0 || strcmp(a, "--image") == 0) && has_value)
		{
			command = a + 2;
			opt.image_path = argv[++i];
		}
		else if (strcmp(a, "--device-info") == 0)
			command = "device-info";
		else if (strcmp(a, "--bench") == 0)
			command = "bench";
		else if (strcmp(a, "--random-weights") == 0)
			opt.random_weights = true;
		else if (strcmp(a, "--config") == 0 && has_value)
			opt.config = argv[++i];
		else if (strcmp(a, "--weights") == 0 && has_value)
			opt.weights = argv[++i];
		else if (strcmp(a, "--out") == 0 && has_value)
			opt.out_path = argv[++i];
		else if (strcmp(a, "--model") == 0 && has_value)
			opt.model_dir = argv[++i];
		else if (strcmp(a, "--prompt") == 0 && has_value)
			opt.prompt = argv[++i];
		else if (strcmp(a, "--task") == 0 && has_value)
			opt.task = argv[++i];
		else if (strcmp(a, "--phrase") == 0 && has_value)
			opt.phrase = argv[++i];
		else if (strcmp(a, "--max-new-tokens") == 0 && has_value)
		{
			long		v;

			if (parse_positive_long(argv[++i], &v) != 0 || v > 4096)
			{
				fprintf(stderr, "groma-server: --max-new-tokens needs an integer in 1..4096\n");
				return 2;
			}
			opt.max_new_tokens = (int) v;
		}
		else if (strcmp(a, "--refer") == 0 && has_value)
		{
			double	   *r = opt.refer[opt.n_refer];
			char		tail;

			if (opt.n_refer >= 16 ||
				sscanf(argv[++i], "%lf,%lf,%lf,%lf%c", &r[0], &r[1], &r[2], &r[3], &tail) != 4)
			{
				fprintf(stderr, "groma-server: --refer needs x1,y1,x2,y2 (at most 16 boxes)\n");
				return 2;
			}
			opt.n_refer++;
		}
		else if (strcmp(a, "--device") == 0 && has_value)
			opt.device = argv[++i];
		else if (strcmp(a, "--max-image-pixels") == 0 && has_value)
		{
			if (parse_positive_long(argv[++i], &opt.limits.max_pixels) != 0)
			{
				fprintf(stderr, "groma-server: --max-image-pixels needs a positive integer\n");
				return 2;
			}
		}
		else
		{
			fprintf(stderr, "groma-server: unknown or incomplete option \"%s\"\n", a);
			usage(stderr);
			return 2;
		}
	}

	if (command == NULL)
	{
		usage(stderr);
		return 2;
	}
	if (strcmp(opt.device, "cpu") != 0 && strcmp(opt.device, "cuda") != 0)
	{
		fprintf(stderr, "groma-server: --device must be cpu or cuda\n");
		return 2;
	}
	if (strcmp(command, "decode") == 0)
	{
		if (opt.out_path == NULL)
		{
			fprintf(stderr, "groma-server: --decode needs --out FILE\n");
			return 2;
		}
		return groma_cli_decode(&opt);
	}
	if (strcmp(command, "info") == 0)
		return groma_cli_info(&opt);
	if (strcmp(command, "image") == 0)
	{
		if (opt.model_dir == NULL || (opt.prompt == NULL) == (opt.task == NULL))
		{
			fprintf(stderr, "groma-server: --image needs --model DIR and exactly one of --prompt or --task\n");
			return 2;
		}
		return groma_cli_generate(&opt);
	}
	if (strcmp(command, "bench") == 0)
	{
		if (!opt.random_weights || opt.config == NULL)
		{
			fprintf(stderr, "groma-server: --bench needs --random-weights and --config real|FILE\n");
			return 2;
		}
		return groma_cli_bench(&opt);
	}
	if (strcmp(command, "regions") == 0)
	{
		if (opt.model_dir == NULL)
		{
			fprintf(stderr, "groma-server: --regions needs --model DIR\n");
			return 2;
		}
		return groma_cli_regions(&opt);
	}
	return groma_cli_device_info();
}
