/*
 * cli.h - groma-server's command-line commands.
 */
#ifndef GROMA_CLI_H
#define GROMA_CLI_H

#include "../image/draw.h"
#include "../image/jpeg_decode.h"
#include "../model/groma_model.h"

/* Options shared by the commands. */
typedef struct groma_cli_options
{
	const char *image_path;		/* --decode / --info IMG */
	const char *out_path;		/* --out FILE */
	const char *device;			/* --device cpu|cuda (default cpu) */
	const char *model_dir;		/* --model DIR */
	double		refer[16][4];	/* --refer x1,y1,x2,y2 (repeatable) */
	int			n_refer;
	const char *prompt;			/* --prompt TEXT (a user query) */
	const char *task;			/* --task caption|caption-detailed|ground|describe */
	const char *phrase;			/* --phrase TEXT for --task ground */
	int			max_new_tokens; /* --max-new-tokens N (default 256) */
	groma_jpeg_limits limits;	/* --max-image-pixels N */
	bool		random_weights; /* --random-weights (--bench) */
	bool		embeddings;		/* --embeddings (--regions) */
	const char *config;			/* --config real|FILE (--bench) */
	const char *weights;		/* --weights f32|bf16|f16 (NULL: bf16 on cuda, f32 on cpu) */
	int			threads;		/* --threads N (0: GROMA_THREADS or every CPU) */
	/* --serve */
	const char *socket_path;	/* --socket PATH */
	int			device_id;		/* --device-id N: the GPU's number, for display */
	int			max_queue;		/* --max-queue N */
	int			max_connections;	/* --max-connections N */
	int			max_decodes;	/* --max-decodes N: image checks and drawings decoding at once */
	int			bench_max_batch;	/* --bench-max-batch N: the largest batch --bench measures */
	int			max_batch;		/* --max-batch N: sequences decoded together */
	int			kv_cache_mb;	/* --kv-cache-mb N: the KV cache pool */
	int			kv_first_tokens;	/* --kv-first-tokens N: new tokens a cache holds at first (grows by doubling) */
	int			act_mb;			/* --act-mb N: the activation arena (0: GROMA_CLI_ACT_BYTES) */
	const char *log_level;		/* --log-level error|warning|info|debug */
	int			watch_fd;		/* --watch-fd FD (-1: none) */
	int			beacon_fd;		/* --beacon-fd FD: a groma_server_beacon to keep up to date (-1: none) */
	int			watchdog_s;		/* --watchdog-s N: a model call running longer is taken as a hang (0: never; -1: the device's default) */
	/* --draw */
	double		draw_boxes[GROMA_DRAW_MAX_BOXES][4];	/* --box x1,y1,x2,y2 (repeatable) */
	const char *draw_labels[GROMA_DRAW_MAX_BOXES];	/* --label TEXT after a --box (NULL: none) */
	int			n_draw;
	bool		any_label;
} groma_cli_options;

/* --decode IMG --out FILE: writes the preprocessed tensor as safetensors; returns an exit code. */
int			groma_cli_decode(const groma_cli_options *opt);

/* --info IMG: prints the header facts as one JSON object; returns an exit code. */
int			groma_cli_info(const groma_cli_options *opt);

/* --model DIR --regions IMG: prints the selected regions as JSON; returns an exit code. */
int			groma_cli_regions(const groma_cli_options *opt);

/* --draw IMG --box x1,y1,x2,y2 [--label TEXT]... --out OUT.jpg: writes the drawn JPEG; returns an exit code. */
int			groma_cli_draw(const groma_cli_options *opt);

/* --model DIR --image IMG --prompt TEXT | --task T: prints the grounded answer as JSON; returns an exit code. */
int			groma_cli_generate(const groma_cli_options *opt);

/*
 * --bench --random-weights --config real|FILE: builds the configured model
 * with random weights on --device and prints one JSON line per figure
 * (stage milliseconds, decode speed, the device and its copy bandwidth).
 */
int			groma_cli_bench(const groma_cli_options *opt);

/* Makes the named device ("cpu" or "cuda") usable, registering the GPU backend for cuda. */
groma_status groma_cli_use_device(const char *name, groma_device *device);

/* The dtype of the weight matrices: --weights, else bf16 on the GPU and f32 on the CPU. */
groma_status groma_cli_weight_dtype(const groma_cli_options *opt, groma_device device, groma_dtype *dtype);

/* --device-info: prints which compute devices this build can use; returns an exit code. */
int			groma_cli_device_info(void);

/* A loaded model and the memory one request works in, on the device --device names. */
typedef struct groma_cli_session
{
	groma_model *model;
	groma_arena act;			/* scratch, on the model's device */
	groma_arena out;			/* result tensors, on the model's device */
	groma_arena host;			/* result arrays, CPU memory */
} groma_cli_session;

/*
 * Loads --model on --device (cuda registers the GPU backend first and fails
 * clearly where there is none) with act_bytes of scratch; close it even
 * after a failure.
 */
groma_status groma_cli_session_open(const groma_cli_options *opt, size_t act_bytes, groma_cli_session *s);

/*
 * The activation arena of --regions and --image: 3 GiB.  At the real
 * model's widths the bench's GPU path (emulated, with 4 DINOv2 layers and 1
 * LLaMA layer: activations do not grow with depth but for ~4 MB of hidden
 * state per extra DINOv2 layer) peaked at 1.6 GB; --image adds the KV cache
 * (about 0.6 GB for 560 positions).
 */
#define GROMA_CLI_ACT_BYTES ((size_t) 3 << 30)

/* Frees the session; safe on a zeroed or half-opened one. */
void		groma_cli_session_close(groma_cli_session *s);

/* Exit status for a GPU left unusable by a sticky error: the supervisor should restart groma-server. */
#define GROMA_CLI_EXIT_DEVICE_LOST 3

/* Prints "groma-server: error (code): message" and returns the exit status (1, or 3 for a lost GPU). */
int			groma_cli_fail(groma_status st);

struct json_t;
struct groma_reply;

/* Prints one JSON object (on one line, or indented; keys in insertion order) on stdout and frees it. */
void		groma_cli_print_json(struct json_t *root, bool indent);

/* Returns the vision stage timings of a reply as a JSON object. */
struct json_t *groma_cli_stage_timings(const struct groma_reply *r);

/* Returns a JSON array of the four pixel corners at p. */
struct json_t *groma_cli_box(const double *p);

/* Reads a whole file into *data (malloc) and *len; returns a status. */
groma_status groma_read_file(const char *path, uint8_t **data, size_t *len);

#endif							/* GROMA_CLI_H */
