/*
 * server_main.c - main() of groma-server: options (getopt_long) and dispatch
 * to a command-line mode or the socket server (--serve).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "serve.h"
#include "protocol.h"
#include "../model/kv_pool.h"

#define GROMA_VERSION "0.1"

/* Prints usage to f. */
static void
usage(FILE *f)
{
	fprintf(f,
			"usage: groma-server --serve --socket PATH [--model DIR] [--device auto|cpu|cuda] [--device-id N]\n"
			"                    [--weights f32|bf16|f16|int8] [--threads N] [--max-queue N] [--max-batch N] [--kv-cache-mb N]\n"
			"                    [--kv-first-tokens N] [--act-mb N] [--max-connections N]\n"
			"                    [--max-decodes N]\n"
			"                    [--log-level error|warning|info|debug] [--watch-fd FD] [--watchdog-s N]\n"
			"                    [--beacon-fd FD]\n"
			"       groma-server --decode IMG.jpg --out FILE.safetensors [--device cpu|cuda]\n"
			"       groma-server --info IMG.jpg\n"
			"       groma-server --draw IMG.jpg [--box x1,y1,x2,y2 [--label TEXT]]... --out OUT.jpg\n"
			"       groma-server --model DIR --regions IMG.jpg [--refer x1,y1,x2,y2]... [--embeddings] [--device cpu|cuda]\n"
			"       groma-server --model DIR --image IMG.jpg (--prompt TEXT | --task caption|caption-detailed|ground|describe)\n"
			"                    [--phrase TEXT] [--refer x1,y1,x2,y2]... [--max-new-tokens N] [--device cpu|cuda]\n"
			"       groma-server --bench --random-weights --config real|FILE [--device cpu|cuda] [--bench-max-batch N]\n"
			"       groma-server --serve ... --random-weights --config real|FILE --model DIR (DIR: only its tokenizer)\n"
			"       groma-server --device-info\n"
			"       groma-server --version | --help\n"
			"options:\n"
			"  --max-image-pixels N   refuse images with more pixels (default %ld)\n"
			"  --embeddings           --regions: print each region's embedding (its feature before the up-projection)\n"
			"  --weights f32|bf16|f16|int8\n"
			"                         linear-layer weights on the GPU (default bf16; the CPU uses f32); int8 stores\n"
			"                         the language model's layer matrices in 8 bits with a scale per output row\n"
			"                         (on the CPU too; the other matrices then bf16 on the GPU, f32 on the CPU)\n"
			"  --threads N            CPU threads for the model (default: the CPUs this process may use)\n"
			"  --max-queue N          --serve: requests waiting beyond N are refused as busy (default %d); a client\n"
			"                         process with requests waiting gets at most three quarters of the N places, and\n"
			"                         one with none waiting takes the place of the newest of the client holding most\n"
			"  --max-connections N    --serve: open connections at most; more wait to be accepted until one closes\n"
			"                         (default %d)\n"
			"  --max-decodes N        --serve: image checks and drawings decoding at once (default %d); more wait\n"
			"  --max-batch N          --serve: answers generated together at most, one decode step for all (default %d)\n"
			"  --kv-cache-mb N        --serve: the KV cache pool those answers share, allocated at start (default %d)\n"
			"  --kv-first-tokens N    --serve: new tokens an answer's KV cache holds at first; it moves into a block\n"
			"                         with twice the room when full (default %d; N >= max_new_tokens takes it all at once)\n"
			"  --act-mb N             --serve: the activation arena, which bounds how many images share a vision pass\n"
			"                         (default 3072)\n"
			"  --bench-max-batch N    --bench: measure vision batches of 1, 4, 16 and decode batches of 1, 8, 32, 64\n"
			"                         images or sequences up to N only (default 64: all)\n"
			"  --watch-fd FD          --serve: exit when FD reaches end of file (the launcher's pipe)\n"
			"  --beacon-fd FD         --serve: keep the start of the model call in progress in FD's first bytes\n"
			"                         (shared memory the launcher reads)\n"
			"  --watchdog-s N         --serve: exit with status %d when one model call (a vision batch, a decode\n"
			"                         step) or the server's lock takes longer than N seconds: a hung GPU or a\n"
			"                         deadlock (default %d on a GPU, 0 on the CPU, where the real model's calls\n"
			"                         can take minutes; 0: never)\n",
			(long) GROMA_DEFAULT_MAX_IMAGE_PIXELS, GROMA_SERVE_DEFAULT_MAX_QUEUE, GROMA_SERVE_DEFAULT_MAX_CONNECTIONS,
			GROMA_SERVE_DEFAULT_MAX_DECODES, GROMA_SERVE_DEFAULT_MAX_BATCH,
			GROMA_SERVE_DEFAULT_KV_CACHE_MB, GROMA_SERVE_DEFAULT_KV_FIRST_TOKENS, GROMA_SERVER_EXIT_HUNG,
			GROMA_SERVE_DEFAULT_WATCHDOG_S);
}

/* Parses an integer in min..max; returns 0 on success. */
static int
parse_long_between(const char *text, long min, long max, long *out)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Option codes for the long options that have no short form. */
enum
{
	OPT_DECODE = 256, OPT_INFO, OPT_REGIONS, OPT_IMAGE, OPT_DEVICE_INFO, OPT_BENCH, OPT_RANDOM_WEIGHTS,
	OPT_CONFIG, OPT_WEIGHTS, OPT_OUT, OPT_MODEL, OPT_PROMPT, OPT_TASK, OPT_PHRASE, OPT_MAX_NEW_TOKENS,
	OPT_REFER, OPT_DEVICE, OPT_MAX_IMAGE_PIXELS, OPT_SERVE, OPT_SOCKET, OPT_DEVICE_ID, OPT_THREADS,
	OPT_MAX_QUEUE, OPT_LOG_LEVEL, OPT_WATCH_FD, OPT_BEACON_FD, OPT_VERSION, OPT_EMBEDDINGS, OPT_DRAW, OPT_BOX, OPT_LABEL,
	OPT_MAX_BATCH, OPT_KV_CACHE_MB, OPT_KV_FIRST_TOKENS, OPT_ACT_MB, OPT_MAX_CONNECTIONS, OPT_BENCH_MAX_BATCH,
	OPT_MAX_DECODES, OPT_WATCHDOG_S
};

static const struct option long_options[] = {
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{"decode", required_argument, NULL, OPT_DECODE},
	{"info", required_argument, NULL, OPT_INFO},
	{"draw", required_argument, NULL, OPT_DRAW},
	{"box", required_argument, NULL, OPT_BOX},
	{"label", required_argument, NULL, OPT_LABEL},
	{"regions", required_argument, NULL, OPT_REGIONS},
	{"image", required_argument, NULL, OPT_IMAGE},
	{"device-info", no_argument, NULL, OPT_DEVICE_INFO},
	{"bench", no_argument, NULL, OPT_BENCH},
	{"random-weights", no_argument, NULL, OPT_RANDOM_WEIGHTS},
	{"embeddings", no_argument, NULL, OPT_EMBEDDINGS},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"weights", required_argument, NULL, OPT_WEIGHTS},
	{"out", required_argument, NULL, OPT_OUT},
	{"model", required_argument, NULL, OPT_MODEL},
	{"prompt", required_argument, NULL, OPT_PROMPT},
	{"task", required_argument, NULL, OPT_TASK},
	{"phrase", required_argument, NULL, OPT_PHRASE},
	{"max-new-tokens", required_argument, NULL, OPT_MAX_NEW_TOKENS},
	{"refer", required_argument, NULL, OPT_REFER},
	{"device", required_argument, NULL, OPT_DEVICE},
	{"max-image-pixels", required_argument, NULL, OPT_MAX_IMAGE_PIXELS},
	{"serve", no_argument, NULL, OPT_SERVE},
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"device-id", required_argument, NULL, OPT_DEVICE_ID},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
	{"max-batch", required_argument, NULL, OPT_MAX_BATCH},
	{"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
	{"max-decodes", required_argument, NULL, OPT_MAX_DECODES},
	{"bench-max-batch", required_argument, NULL, OPT_BENCH_MAX_BATCH},
	{"kv-cache-mb", required_argument, NULL, OPT_KV_CACHE_MB},
	{"kv-first-tokens", required_argument, NULL, OPT_KV_FIRST_TOKENS},
	{"act-mb", required_argument, NULL, OPT_ACT_MB},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"watch-fd", required_argument, NULL, OPT_WATCH_FD},
	{"beacon-fd", required_argument, NULL, OPT_BEACON_FD},
	{"watchdog-s", required_argument, NULL, OPT_WATCHDOG_S},
	{NULL, 0, NULL, 0}
};

/* Reads a numeric option into *out within min..max; prints why and returns -1 when it is not one. */
static int
option_between(const char *name, const char *text, long min, long max, long *out)
{
	if (parse_long_between(text, min, max, out) == 0)
		return 0;
	fprintf(stderr, "groma-server: --%s needs an integer in %ld..%ld\n", name, min, max);
	return -1;
}

/* Reads a numeric option into *out within 1..max; prints why and returns -1 when it is not one. */
static int
numeric_option(const char *name, const char *text, long max, long *out)
{
	return option_between(name, text, 1, max, out);
}

/* Applies --box (a new box) or --label (the label of the last box); returns 0, or 2 on a usage error. */
static int
apply_draw_option(int c, const char *arg, groma_cli_options *opt)
{
	char		tail;

	if (c == OPT_LABEL)
	{
		if (opt->n_draw == 0 || opt->draw_labels[opt->n_draw - 1] != NULL)
		{
			fprintf(stderr, "groma-server: each --label follows the --box it names (one label per box)\n");
			return 2;
		}
		opt->draw_labels[opt->n_draw - 1] = arg;
		opt->any_label = true;
		return 0;
	}
	if (opt->n_draw >= GROMA_DRAW_MAX_BOXES)
	{
		fprintf(stderr, "groma-server: at most %d --box options\n", GROMA_DRAW_MAX_BOXES);
		return 2;
	}
	if (sscanf(arg, "%lf,%lf,%lf,%lf%c", &opt->draw_boxes[opt->n_draw][0], &opt->draw_boxes[opt->n_draw][1],
			   &opt->draw_boxes[opt->n_draw][2], &opt->draw_boxes[opt->n_draw][3], &tail) != 4)
	{
		fprintf(stderr, "groma-server: --box needs x1,y1,x2,y2\n");
		return 2;
	}
	opt->n_draw++;
	return 0;
}

/* Applies one parsed option to opt; returns 0, 1 when main should exit 0 (help, version), or 2 on a usage error. */
static int
apply_option(int c, const char *arg, groma_cli_options *opt, const char **command)
{
	long		v;

	switch (c)
	{
		case 'h':
			usage(stdout);
			return 1;
		case OPT_VERSION:
			printf("groma-server %s\n", GROMA_VERSION);
			return 1;
		case OPT_DECODE:
		case OPT_INFO:
		case OPT_REGIONS:
		case OPT_IMAGE:
		case OPT_DRAW:
			*command = c == OPT_DECODE ? "decode" : c == OPT_INFO ? "info" : c == OPT_REGIONS ? "regions" :
				c == OPT_DRAW ? "draw" : "image";
			opt->image_path = arg;
			return 0;
		case OPT_BOX:
		case OPT_LABEL:
			return apply_draw_option(c, arg, opt);
		case OPT_DEVICE_INFO:
			*command = "device-info";
			return 0;
		case OPT_BENCH:
			*command = "bench";
			return 0;
		case OPT_SERVE:
			*command = "serve";
			return 0;
		case OPT_RANDOM_WEIGHTS:
			opt->random_weights = true;
			return 0;
		case OPT_EMBEDDINGS:
			opt->embeddings = true;
			return 0;
		case OPT_CONFIG:
			opt->config = arg;
			return 0;
		case OPT_WEIGHTS:
			opt->weights = arg;
			return 0;
		case OPT_OUT:
			opt->out_path = arg;
			return 0;
		case OPT_MODEL:
			opt->model_dir = arg;
			return 0;
		case OPT_PROMPT:
			opt->prompt = arg;
			return 0;
		case OPT_TASK:
			opt->task = arg;
			return 0;
		case OPT_PHRASE:
			opt->phrase = arg;
			return 0;
		case OPT_DEVICE:
			opt->device = arg;
			return 0;
		case OPT_SOCKET:
			opt->socket_path = arg;
			return 0;
		case OPT_LOG_LEVEL:
			opt->log_level = arg;
			return 0;
		case OPT_MAX_NEW_TOKENS:
			if (numeric_option("max-new-tokens", arg, 4096, &v) != 0)
				return 2;
			opt->max_new_tokens = (int) v;
			return 0;
		case OPT_MAX_IMAGE_PIXELS:
			if (numeric_option("max-image-pixels", arg, 1L << 40, &opt->limits.max_pixels) != 0)
				return 2;
			return 0;
		case OPT_THREADS:
			if (numeric_option("threads", arg, 1024, &v) != 0)
				return 2;
			opt->threads = (int) v;
			return 0;
		case OPT_MAX_QUEUE:
			if (numeric_option("max-queue", arg, 100000, &v) != 0)
				return 2;
			opt->max_queue = (int) v;
			return 0;
		case OPT_BENCH_MAX_BATCH:
			if (numeric_option("bench-max-batch", arg, 64, &v) != 0)
				return 2;
			opt->bench_max_batch = (int) v;
			return 0;
		case OPT_MAX_CONNECTIONS:
			if (numeric_option("max-connections", arg, 1000000, &v) != 0)
				return 2;
			opt->max_connections = (int) v;
			return 0;
		case OPT_MAX_DECODES:
			if (numeric_option("max-decodes", arg, 1024, &v) != 0)
				return 2;
			opt->max_decodes = (int) v;
			return 0;
		case OPT_MAX_BATCH:
			if (numeric_option("max-batch", arg, GROMA_KV_POOL_MAX_BLOCKS, &v) != 0)
				return 2;
			opt->max_batch = (int) v;
			return 0;
		case OPT_KV_CACHE_MB:
			if (numeric_option("kv-cache-mb", arg, 1 << 20, &v) != 0)
				return 2;
			opt->kv_cache_mb = (int) v;
			return 0;
		case OPT_KV_FIRST_TOKENS:
			if (numeric_option("kv-first-tokens", arg, 1 << 20, &v) != 0)
				return 2;
			opt->kv_first_tokens = (int) v;
			return 0;
		case OPT_WATCHDOG_S:
			if (option_between("watchdog-s", arg, 0, 86400, &v) != 0)
				return 2;
			opt->watchdog_s = (int) v;
			return 0;
		case OPT_ACT_MB:
			if (numeric_option("act-mb", arg, 1 << 20, &v) != 0)
				return 2;
			opt->act_mb = (int) v;
			return 0;
		case OPT_DEVICE_ID:
			if (option_between("device-id", arg, 0, 1024, &v) != 0)
				return 2;
			opt->device_id = (int) v;
			return 0;
		case OPT_BEACON_FD:
			if (option_between("beacon-fd", arg, 0, 1 << 20, &v) != 0)
				return 2;
			opt->beacon_fd = (int) v;
			return 0;
		case OPT_WATCH_FD:
			if (numeric_option("watch-fd", arg, 1 << 20, &v) != 0)
				return 2;
			opt->watch_fd = (int) v;
			return 0;
		case OPT_REFER:
			{
				double	   *r = opt->refer[opt->n_refer];
				char		tail;

				if (opt->n_refer >= 16 ||
					sscanf(arg, "%lf,%lf,%lf,%lf%c", &r[0], &r[1], &r[2], &r[3], &tail) != 4)
				{
					fprintf(stderr, "groma-server: --refer needs x1,y1,x2,y2 (at most 16 boxes)\n");
					return 2;
				}
				opt->n_refer++;
				return 0;
			}
		default:
			usage(stderr);
			return 2;
	}
}

/* Checks the options a command needs and runs it; returns the exit status. */
static int
dispatch(const char *command, groma_cli_options *opt)
{
	bool		serve = strcmp(command, "serve") == 0;

	if (strcmp(opt->device, "cpu") != 0 && strcmp(opt->device, "cuda") != 0 &&
		!(serve && strcmp(opt->device, "auto") == 0))
	{
		fprintf(stderr, "groma-server: --device must be cpu or cuda%s\n", serve ? " or auto" : "");
		return 2;
	}
	if (serve)
	{
		if (opt->socket_path == NULL)
		{
			fprintf(stderr, "groma-server: --serve needs --socket PATH\n");
			return 2;
		}
		if (opt->random_weights && (opt->config == NULL || opt->model_dir == NULL))
		{
			fprintf(stderr, "groma-server: --serve --random-weights needs --config real|FILE and --model DIR "
					"(whose tokenizer it uses)\n");
			return 2;
		}
		return groma_serve(opt);
	}
	if (strcmp(command, "decode") == 0)
	{
		if (opt->out_path == NULL)
		{
			fprintf(stderr, "groma-server: --decode needs --out FILE\n");
			return 2;
		}
		return groma_cli_decode(opt);
	}
	if (strcmp(command, "info") == 0)
		return groma_cli_info(opt);
	if (strcmp(command, "draw") == 0)
	{
		if (opt->out_path == NULL)
		{
			fprintf(stderr, "groma-server: --draw needs --out FILE\n");
			return 2;
		}
		return groma_cli_draw(opt);
	}
	if (strcmp(command, "image") == 0)
	{
		if (opt->model_dir == NULL || (opt->prompt == NULL) == (opt->task == NULL))
		{
			fprintf(stderr, "groma-server: --image needs --model DIR and exactly one of --prompt or --task\n");
			return 2;
		}
		return groma_cli_generate(opt);
	}
	if (strcmp(command, "bench") == 0)
	{
		if (!opt->random_weights || opt->config == NULL)
		{
			fprintf(stderr, "groma-server: --bench needs --random-weights and --config real|FILE\n");
			return 2;
		}
		return groma_cli_bench(opt);
	}
	if (strcmp(command, "regions") == 0)
	{
		if (opt->model_dir == NULL)
		{
			fprintf(stderr, "groma-server: --regions needs --model DIR\n");
			return 2;
		}
		return groma_cli_regions(opt);
	}
	return groma_cli_device_info();
}

/* Entry point: exit 0 on success, 1 when the work failed, 2 on a usage error, 3 on a lost GPU. */
int
main(int argc, char **argv)
{
	static groma_cli_options opt;	/* static: the --box table is large */
	const char *command = NULL;
	int			c;

	memset(&opt, 0, sizeof(opt));
	opt.device = "cpu";
	opt.max_new_tokens = 256;
	opt.limits = groma_jpeg_default_limits();
	opt.max_queue = GROMA_SERVE_DEFAULT_MAX_QUEUE;
	opt.max_connections = GROMA_SERVE_DEFAULT_MAX_CONNECTIONS;
	opt.max_decodes = GROMA_SERVE_DEFAULT_MAX_DECODES;
	opt.bench_max_batch = 64;
	opt.max_batch = GROMA_SERVE_DEFAULT_MAX_BATCH;
	opt.kv_cache_mb = GROMA_SERVE_DEFAULT_KV_CACHE_MB;
	opt.kv_first_tokens = GROMA_SERVE_DEFAULT_KV_FIRST_TOKENS;
	opt.log_level = "info";
	opt.watch_fd = -1;
	opt.beacon_fd = -1;
	opt.watchdog_s = -1;		/* GROMA_SERVE_DEFAULT_WATCHDOG_S on a GPU, none on the CPU */
	opt.device_id = -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1)
	{
		int			rc;

		if (c == '?' || c == ':')
		{
			fprintf(stderr, "groma-server: unknown or incomplete option \"%s\"\n", argv[optind - 1]);
			usage(stderr);
			return 2;
		}
		rc = apply_option(c, optarg, &opt, &command);
		if (rc != 0)
			return rc == 1 ? 0 : 2;
	}
	if (optind < argc)
	{
		fprintf(stderr, "groma-server: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (command == NULL)
	{
		usage(stderr);
		return 2;
	}
	if (opt.threads > 0)
	{
		char		n[16];

		snprintf(n, sizeof(n), "%d", opt.threads);
		setenv("GROMA_THREADS", n, 1);
	}
	return dispatch(command, &opt);
}
