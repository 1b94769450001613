/*
 * preprocess.h - Groma's image preprocessing (GROMA.md step 1).
 *
 * RGB pixels are resized to 448x448 with PIL's bicubic filter (aspect ratio
 * not kept), scaled by 1/255 and normalised with the ImageNet mean and std,
 * giving the vision encoder's input tensor in channel-first layout.
 */
#ifndef GROMA_PREPROCESS_H
#define GROMA_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "jpeg_decode.h"

/* Side of the square image the vision encoder takes. */
#define GROMA_IMAGE_SIZE 448

/* Per-channel normalisation constants (GROMA.md step 1, preprocessor_config.json). */
extern const float groma_image_mean[3];
extern const float groma_image_std[3];

/* Returns the normalised value of one 8-bit sample of channel c, exactly as HF's rescale + normalize. */
float		groma_normalize_sample(uint8_t value, int c);

/*
 * Normalises a [size][size][3] RGB image into pixel_values ([3][size][size]
 * float32, channel first).
 */
void		groma_normalize_rgb(const uint8_t *rgb, int size, float *pixel_values);

/*
 * Resizes image to GROMA_IMAGE_SIZE and normalises it.  resized
 * ([448][448][3]) may be NULL when the caller does not need the 8-bit
 * image; pixel_values is [3][448][448].
 */
groma_status groma_preprocess_rgb(const groma_rgb_image *image, uint8_t *resized,
								  float *pixel_values);

/*
 * Decodes JPEG bytes with limits, then preprocesses them.  *width and
 * *height receive the original image size (needed to map boxes back).
 */
groma_status groma_preprocess_jpeg(const uint8_t *data, size_t len,
								   const groma_jpeg_limits *limits, uint8_t *resized,
								   float *pixel_values, int *width, int *height);

#endif							/* GROMA_PREPROCESS_H */
