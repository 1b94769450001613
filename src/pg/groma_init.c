/*
 * groma_init.c - module load: GUC definitions, and under
 * shared_preload_libraries the shared registry and the launcher worker.
 *
 * Works both when loaded on first use and from shared_preload_libraries;
 * only the latter starts groma-server.  No CUDA is ever initialised in
 * PostgreSQL: the model runs in groma-server.
 */
#include "postgres.h"

#include <ctype.h>
#include <string.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "bulk_progress.h"
#include "groma_pg.h"
#include "server_registry.h"

PG_MODULE_MAGIC;

int			groma_max_image_pixels = (int) GROMA_DEFAULT_MAX_IMAGE_PIXELS;
char	   *groma_model_path = NULL;
int			groma_device = GROMA_DEVICE_SETTING_AUTO;
int			groma_weights = GROMA_WEIGHTS_SETTING_BF16;
int			groma_threads = 0;
int			groma_max_queue = 64;
int			groma_max_decodes = 4;
int			groma_max_batch = 16;
int			groma_kv_cache_mb = 4096;
int			groma_kv_first_tokens = 256;
int			groma_server_watchdog = -1;
int			groma_activation_mb = 0;
char	   *groma_devices = NULL;
char	   *groma_server_path = NULL;
int			groma_log_level = GROMA_LOG_LEVEL_INFO;
int			groma_request_timeout = 0;
int			groma_max_new_tokens = 1024;
int			groma_bulk_in_flight = 4;
int			groma_restart_wait = 0;

/* The largest value the setting accepts: 16384 x 16384, 768 MiB of RGB decoded in a backend. */
#define GROMA_MAX_IMAGE_PIXELS_LIMIT (16384 * 16384)

static const struct config_enum_entry device_options[] = {
	{"auto", GROMA_DEVICE_SETTING_AUTO, false},
	{"cpu", GROMA_DEVICE_SETTING_CPU, false},
	{"cuda", GROMA_DEVICE_SETTING_CUDA, false},
	{NULL, 0, false}
};

static const struct config_enum_entry weights_options[] = {
	{"f32", GROMA_WEIGHTS_SETTING_F32, false},
	{"bf16", GROMA_WEIGHTS_SETTING_BF16, false},
	{"f16", GROMA_WEIGHTS_SETTING_F16, false},
	{"int8", GROMA_WEIGHTS_SETTING_INT8, false},
	{NULL, 0, false}
};

static const struct config_enum_entry log_level_options[] = {
	{"debug", GROMA_LOG_LEVEL_DEBUG, false},
	{"info", GROMA_LOG_LEVEL_INFO, false},
	{"warning", GROMA_LOG_LEVEL_WARNING, false},
	{"error", GROMA_LOG_LEVEL_ERROR, false},
	{NULL, 0, false}
};

void		_PG_init(void);

/* Returns the name of an enum entry, or "?" for a value not in the table. */
static const char *
enum_name(const struct config_enum_entry *options, int value)
{
	for (const struct config_enum_entry *e = options; e->name != NULL; e++)
		if (e->val == value)
			return e->name;
	return "?";
}

/* Returns groma.device as groma-server's --device spells it. */
const char *
groma_device_setting_name(int value)
{
	return enum_name(device_options, value);
}

/* Returns groma.weights as groma-server's --weights spells it. */
const char *
groma_weights_setting_name(int value)
{
	return enum_name(weights_options, value);
}

/* Returns groma.log_level as groma-server's --log-level spells it. */
const char *
groma_log_level_setting_name(int value)
{
	return enum_name(log_level_options, value);
}

/*
 * Splits a groma.devices list into trimmed ids; returns the count, or -1
 * when an entry is not a small decimal number, names an id already listed
 * (two servers would load the model twice on one GPU) or there are too
 * many.
 */
int
groma_parse_devices(const char *list, char ids[][16], int max_ids)
{
	const char *p = list ? list : "";
	int			n = 0;

	while (isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
		return 0;
	for (;;)
	{
		int			len = 0;

		while (isspace((unsigned char) *p))
			p++;
		while (isdigit((unsigned char) p[len]))
			len++;
		/* ids as groma-server's --device-id takes them (0 to 1024), written without leading zeros */
		if (len == 0 || len > 9 || n >= max_ids || atoi(p) > GROMA_MAX_DEVICE_ID)
			return -1;
		snprintf(ids[n], 16, "%d", atoi(p));
		for (int k = 0; k < n; k++)
			if (strcmp(ids[k], ids[n]) == 0)
				return -1;
		n++;
		p += len;
		while (isspace((unsigned char) *p))
			p++;
		if (*p == '\0')
			return n;
		if (*p != ',')
			return -1;
		p++;
	}
}

/* Accepts a groma.devices value only when it is a list of at most GROMA_MAX_SERVERS distinct device ids. */
static bool
check_devices(char **newval, void **extra, GucSource source)
{
	char		ids[GROMA_MAX_SERVERS][16];

	if (groma_parse_devices(*newval, ids, GROMA_MAX_SERVERS) < 0)
	{
		GUC_check_errdetail("groma.devices must be a comma-separated list of at most %d distinct GPU ids (0 to %d), "
							"like '0,1'.", GROMA_MAX_SERVERS, GROMA_MAX_DEVICE_ID);
		return false;
	}
	return true;
}

/*
 * Refuses a groma.server_watchdog under a second other than 0: the server
 * counts whole seconds, and '400ms' rounded to 0 would turn it off.
 */
static bool
check_server_watchdog(int *newval, void **extra, GucSource source)
{
	if (*newval > 0 && *newval < 1000)
	{
		GUC_check_errdetail("groma.server_watchdog is at least 1 s; 0 turns the watchdog off and -1 leaves it to the "
							"device (300 s on a GPU, none on the CPU).");
		return false;
	}
	return true;
}

/* Defines the settings groma-server starts with (read by the launcher on start and reload). */
static void
define_server_settings(void)
{
	DefineCustomStringVariable("groma.model_path",
							   "Directory of the Groma model that groma-server loads.",
							   "Empty means groma-server runs without a model: image checks work, model functions fail until it is set. "
							   "Changing it restarts groma-server on reload.",
							   &groma_model_path, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomEnumVariable("groma.device",
							 "Device groma-server runs the model on.",
							 "auto uses a GPU when groma-server finds one and the CPU otherwise.",
							 &groma_device, GROMA_DEVICE_SETTING_AUTO, device_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("groma.weights",
							 "Storage type of the model's matrices on a GPU.",
							 "The CPU computes in f32 and ignores bf16 and f16; int8 (the language model's "
							 "matrices in 8 bits) applies on the CPU too.",
							 &groma_weights, GROMA_WEIGHTS_SETTING_BF16, weights_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("groma.threads",
							"Number of CPU threads each groma-server uses.",
							"Zero lets groma-server choose.",
							&groma_threads, 0, 0, 1024, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("groma.max_queue",
							"Largest number of requests that wait in each groma-server's queue.",
							"Requests beyond it fail at once with insufficient_resources.",
							&groma_max_queue, 64, 1, 65536, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("groma.max_decodes",
							"Largest number of images each groma-server decodes at once for image checks and drawings.",
							"Each decode holds the whole image's pixels; the others wait for one to end.",
							&groma_max_decodes, 4, 1, 1024, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("groma.max_batch",
							"Largest number of answers each groma-server generates together.",
							"Each decode step runs once for all of them; new requests join between steps.",
							&groma_max_batch, 16, 1, 256, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("groma.kv_cache_mb",
							"Size of each groma-server's KV cache pool, allocated when the model loads.",
							"Answers being generated share it; a request waits in the queue while it is full.",
							&groma_kv_cache_mb, 4096, 16, 1 << 20, PGC_SIGHUP, GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomIntVariable("groma.kv_first_tokens",
							"New tokens an answer's KV cache holds when it starts.",
							"A full cache moves into a block with twice the room; when the pool cannot hold that, "
							"the youngest answer starts again later. A value at or above max_new_tokens takes "
							"the whole cache at once.",
							&groma_kv_first_tokens, 256, 1, 1 << 20, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("groma.server_watchdog",
							"Longest one model call of groma-server (a vision batch, a decode step) may run.",
							"A server whose call runs longer, or whose lock is held longer, is taken as hung (a GPU "
							"that no longer answers, a deadlock): it exits, the requests it held fail at once, and the "
							"launcher starts it again. Zero never takes a server as hung; -1 means 300 s on a GPU "
							"and never on the CPU, where the real model's calls can take minutes.",
							&groma_server_watchdog, -1, -1, 86400 * 1000, PGC_SIGHUP, GUC_UNIT_MS, check_server_watchdog,
							NULL, NULL);
	DefineCustomIntVariable("groma.activation_mb",
							"Size of each groma-server's activation arena; it bounds how many images share a vision pass.",
							"Zero leaves groma-server's default (3072 MB).",
							&groma_activation_mb, 0, 0, 1 << 20, PGC_SIGHUP, GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomStringVariable("groma.devices",
							   "GPU ids to run one groma-server on each, like '0,1'.",
							   "Empty runs a single groma-server.",
							   &groma_devices, "", PGC_SIGHUP, 0, check_devices, NULL, NULL);
	DefineCustomStringVariable("groma.server_path",
							   "Path of the groma-server program the launcher runs.",
							   "Empty means groma-server in PostgreSQL's bin directory.",
							   &groma_server_path, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomEnumVariable("groma.log_level",
							 "Least severe groma-server message written to the server log.",
							 NULL,
							 &groma_log_level, GROMA_LOG_LEVEL_INFO, log_level_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/* Defines the settings of image checks and of each session's requests. */
static void
define_session_settings(void)
{
	DefineCustomIntVariable("groma.max_image_pixels",
							"Largest image, in pixels (width times height), that groma decodes.",
							"Images with more pixels are refused from their header, before any decoding.",
							&groma_max_image_pixels,
							(int) GROMA_DEFAULT_MAX_IMAGE_PIXELS,
							1, GROMA_MAX_IMAGE_PIXELS_LIMIT,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("groma.request_timeout",
							"Longest time a session waits for groma-server to answer a request.",
							"Zero waits without a limit (statement_timeout still applies).",
							&groma_request_timeout, 0, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("groma.max_new_tokens",
							"Largest number of tokens the model generates for one answer.",
							NULL,
							&groma_max_new_tokens, 1024, 1, 4096, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("groma.bulk_in_flight",
							"Requests an array call such as groma_caption_many(bytea[]) keeps in flight at once.",
							"Each travels on its own connection to groma-server and waits in its queue.",
							&groma_bulk_in_flight, 4, 1, 64, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("groma.restart_wait",
							"How long a single or array call waits for groma-server when it is restarting, "
							"starting or loading its model.",
							"Before the first send, and again, in all, for requests a server lost through no "
							"fault of their own (never read, answered \"shutting down\" or \"loading\", or "
							"only queued behind another request's fatal model call), which are sent again once "
							"it is back.  Zero fails at once.",
							&groma_restart_wait, 0, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* Defines the groma.* settings; under shared_preload_libraries also sets up the registry and the launcher. */
void
_PG_init(void)
{
	define_session_settings();
	define_server_settings();
	if (process_shared_preload_libraries_in_progress)
	{
		groma_registry_request();
		groma_progress_request();
		groma_launcher_register();
	}
	MarkGUCPrefixReserved("groma");
}

/* Returns the JPEG limits in force for this session. */
groma_jpeg_limits
groma_pg_jpeg_limits(void)
{
	groma_jpeg_limits limits = groma_jpeg_default_limits();

	limits.max_pixels = groma_max_image_pixels;
	return limits;
}
