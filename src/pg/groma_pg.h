/*
 * groma_pg.h - what the PostgreSQL-side files share: GUC variables and the
 * one place that turns a groma_status into an ereport.
 */
#ifndef GROMA_PG_H
#define GROMA_PG_H

#include "../runtime/status.h"
#include "../image/jpeg_decode.h"

/* groma.max_image_pixels */
extern int	groma_max_image_pixels;

/* Settings of groma-server, read by the launcher at start and on reload. */
extern char *groma_model_path;	/* groma.model_path ("" = no model) */
extern int	groma_device;		/* groma.device, a groma_device_setting */
extern int	groma_weights;		/* groma.weights, a groma_weights_setting */
extern int	groma_threads;		/* groma.threads (0 = the server's default) */
extern int	groma_max_queue;	/* groma.max_queue */
extern int	groma_max_decodes;	/* groma.max_decodes */
extern int	groma_max_batch;	/* groma.max_batch */
extern int	groma_kv_cache_mb;	/* groma.kv_cache_mb */
extern int	groma_kv_first_tokens;	/* groma.kv_first_tokens */
extern int	groma_server_watchdog;	/* groma.server_watchdog, milliseconds (0: off, -1: the device's default; else 1000 or more) */
extern int	groma_activation_mb;	/* groma.activation_mb */
extern char *groma_devices;		/* groma.devices ("" = one server) */
extern char *groma_server_path; /* groma.server_path ("" = next to postgres) */
extern int	groma_log_level;	/* groma.log_level, a groma_log_level_setting */

/* Settings of the backend client. */
extern int	groma_request_timeout;	/* groma.request_timeout, milliseconds (0 = none) */
extern int	groma_max_new_tokens;	/* groma.max_new_tokens */
extern int	groma_bulk_in_flight;	/* groma.bulk_in_flight: requests an array call keeps in flight */
extern int	groma_restart_wait;	/* groma.restart_wait, milliseconds a plain call waits for a server on its way (0 = none) */

typedef enum groma_device_setting
{
	GROMA_DEVICE_SETTING_AUTO,
	GROMA_DEVICE_SETTING_CPU,
	GROMA_DEVICE_SETTING_CUDA
} groma_device_setting;

typedef enum groma_weights_setting
{
	GROMA_WEIGHTS_SETTING_F32,
	GROMA_WEIGHTS_SETTING_BF16,
	GROMA_WEIGHTS_SETTING_F16,
	GROMA_WEIGHTS_SETTING_INT8
} groma_weights_setting;

typedef enum groma_log_level_setting
{
	GROMA_LOG_LEVEL_DEBUG,
	GROMA_LOG_LEVEL_INFO,
	GROMA_LOG_LEVEL_WARNING,
	GROMA_LOG_LEVEL_ERROR
} groma_log_level_setting;

/* Returns the command-line spelling of groma.device, groma.weights, groma.log_level. */
const char *groma_device_setting_name(int value);
const char *groma_weights_setting_name(int value);
const char *groma_log_level_setting_name(int value);

/* The largest GPU id groma.devices takes (groma-server's --device-id takes 0 to this). */
#define GROMA_MAX_DEVICE_ID 1024

/*
 * Splits groma.devices into its entries (trimmed decimal ids); returns how
 * many there are (0 when the setting is empty), or -1 when an entry is not
 * a decimal id or there are more than max_ids.
 */
int			groma_parse_devices(const char *list, char ids[][16], int max_ids);

/* Returns the JPEG limits in force for this session (from the GUCs). */
groma_jpeg_limits groma_pg_jpeg_limits(void);

/* Raises ERROR for a failed status with an errcode that fits its code; returns on success. */
void		groma_pg_check(groma_status st);

/*
 * True for a failed status about the image itself: not a JPEG, damaged or
 * cut short, unsupported, or over a JPEG limit (pixels, scans, request
 * size); SQLSTATE 22P03, 0A000 or 54000 with a message starting "JPEG" or
 * "image".
 */
bool		groma_status_is_image_fault(const groma_status *st);

/* Registers the launcher background worker (from _PG_init under shared_preload_libraries). */
void		groma_launcher_register(void);

#endif							/* GROMA_PG_H */
