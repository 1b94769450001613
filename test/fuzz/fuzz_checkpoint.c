/*
 * fuzz_checkpoint.c - libFuzzer target for checkpoint ingestion from memory:
 * the ZIP directory, data.pkl through the restricted unpickler, the view
 * bounds checks (the first and last element of every tensor are read, so an
 * unchecked view overreads the input and ASan stops), the unpickler alone
 * on the raw input (so mutations are not lost to data.pkl's CRC check), and
 * the config.json parser.
 */
#include <stddef.h>
#include <stdint.h>

#include "../../src/io/checkpoint.h"
#include "../../src/io/element_convert.h"
#include "../../src/io/model_config.h"
#include "../../src/io/pickle_reader.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads element index of t (as double for floats, raw otherwise). */
static void
touch(const groma_ckpt_tensor *t, int64_t index)
{
	uint8_t		raw[8];
	double		value;

	if (groma_convert_is_float(t->dtype))
		(void) groma_ckpt_tensor_read(t, index, 1, GROMA_ST_F64, &value);
	else
		(void) groma_ckpt_tensor_read(t, index, 1, t->dtype, raw);
}

/* One input: every reader must return a status and never crash, leak or overread. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	groma_checkpoint *ckpt = NULL;
	groma_pickle_state_dict sd;
	groma_model_config cfg;

	if (groma_checkpoint_open_memory(data, size, "fuzz.pt", &ckpt).code == GROMA_OK)
	{
		for (size_t i = 0; i < groma_checkpoint_count(ckpt); i++)
		{
			const groma_ckpt_tensor *t = groma_checkpoint_tensor_at(ckpt, i);
			int64_t		n = groma_ckpt_tensor_numel(t);

			if (n > 0)
			{
				touch(t, 0);
				touch(t, n - 1);
			}
		}
		groma_checkpoint_close(ckpt);
	}
	if (groma_pickle_read_state_dict(data, size, "fuzz.pkl", &sd).code == GROMA_OK)
		groma_pickle_state_dict_free(&sd);
	if (size < 65536)
		(void) groma_model_config_parse((const char *) data, size, "fuzz.json", &cfg);
	return 0;
}
