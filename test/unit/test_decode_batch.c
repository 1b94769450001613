/*
 * test_decode_batch.c - generations decoded together equal each alone: the
 * nine golden requests (three images, three prompts) run through
 * groma_sequence_begin/step with at most 1, 3 and 8 sequences in a step,
 * newcomers joining mid-flight (their prefills in the same step as the
 * others' decode tokens, one or several at a time), different token limits
 * and a KV pool that holds only some of them at once, caches that start
 * with room for one new token and grow as the answers run; every
 * sequence's ids are the golden greedy ids (a prefix, for the shorter
 * limits), and the pool is whole again at the end.  A short activation arena splits a step: the
 * prefills run alone, and one that does not fit even alone fails only its
 * own sequence.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/model/generate.h"
#include "../../src/model/kv_pool.h"

#define N_REQUESTS 9

/* One golden request: the ids it must produce and its sequence. */
typedef struct batch_request
{
	const char *name;
	const char *prompt;
	int64_t		golden[12];
	int			limit;			/* max_new_tokens: 12, 7 or 3 */
	groma_sequence seq;
	bool		begun;
	bool		checked;
} batch_request;

/* The vision results of the golden images, without and with the golden refer box, computed once. */
static groma_arena vision_out[3][2];	/* on the model's device */
static groma_arena vision_host[3][2];	/* CPU memory */
static groma_vision_result vision_done[3][2];
static bool vision_ready[3][2];

/* Returns case c's vision result (with_refer: with its golden refer box), running vision the first time. */
static groma_status
golden_vision(int c, bool with_refer, golden_case *gc, const groma_model *m, groma_arena *act,
			  const groma_vision_result **vis)
{
	char		path[4096];
	size_t		len;
	uint8_t    *jpeg;
	int64_t		nb = 0;
	float	   *rb;
	double		px[4] = {0};
	groma_jpeg_limits limits = groma_jpeg_default_limits();
	groma_arena *out = &vision_out[c][with_refer];
	groma_status st;

	*vis = &vision_done[c][with_refer];
	if (vision_ready[c][with_refer])
		return groma_ok();
	snprintf(path, sizeof(path), "%s%s", unit_path("test/golden/images/"), golden_cases[c].image);
	jpeg = unit_read_file(path, &len);
	if (jpeg == NULL)
		return groma_error(GROMA_ERR_IO, "cannot read %s", path);
	rb = with_refer ? golden_f32(gc, "sel.ref.refer_box", &nb) : NULL;
	if (rb)
	{
		groma_jpeg_info info;

		CHECK(groma_jpeg_read_info(jpeg, len, &limits, &info).code == GROMA_OK);
		px[0] = ((double) rb[0] - rb[2] / 2.0) * info.width;
		px[1] = ((double) rb[1] - rb[3] / 2.0) * info.height;
		px[2] = ((double) rb[0] + rb[2] / 2.0) * info.width;
		px[3] = ((double) rb[1] + rb[3] / 2.0) * info.height;
	}
	st = groma_arena_init_on(out, act->device, (size_t) 64 << 20);
	if (st.code == GROMA_OK)
		st = groma_arena_init(&vision_host[c][with_refer], (size_t) 8 << 20);
	groma_arena_reset(act);
	if (st.code == GROMA_OK)
		st = groma_vision_run(m, jpeg, len, &limits, px, with_refer ? 1 : 0, act, out, &vision_host[c][with_refer],
							  &vision_done[c][with_refer]);
	vision_ready[c][with_refer] = st.code == GROMA_OK;
	free(rb);
	free(jpeg);
	return st;
}

/* Begins request r (case c) over its image's vision result (run first: act is then reset). */
static groma_status
begin_request(batch_request *r, int c, golden_case *gc, const groma_model *m, const groma_tokenizer *tok,
			  groma_kv_pool *pool, int first_room, groma_arena *act)
{
	char		key[128];
	const groma_vision_result *vis;
	const char *query;

	GROMA_TRY(golden_vision(c, strcmp(r->prompt, "regcap") == 0, gc, m, act, &vis));
	snprintf(key, sizeof(key), "prompt.%s.query", r->prompt);
	query = groma_st_metadata(gc->compact, key);
	return groma_sequence_begin(m, tok, vis, query ? query : "", r->limit, first_room, false, pool, act, &r->seq);
}

/* Reads the nine requests' names, prompts, limits and golden ids from the open golden cases. */
static void
load_requests(golden_case *gc, batch_request *req)
{
	static const char *prompts[3] = {"gcap", "rec", "regcap"};
	static const int limits[3] = {12, 7, 3};

	memset(req, 0, sizeof(batch_request) * N_REQUESTS);
	for (int i = 0; i < N_REQUESTS; i++)
	{
		char		key[128];
		int64_t		n = 0;
		int64_t    *ids;

		req[i].name = golden_cases[i / 3].name;
		req[i].prompt = prompts[i % 3];
		req[i].limit = limits[(i + i / 3) % 3];
		snprintf(key, sizeof(key), "prompt.%s.generated_ids", req[i].prompt);
		ids = golden_i64(&gc[i / 3], key, &n);
		CHECKF(ids != NULL && n == 12, "%s %s: golden ids", req[i].name, req[i].prompt);
		if (ids)
			memcpy(req[i].golden, ids, sizeof(int64_t) * 12);
		free(ids);
	}
}

/* Runs vision for every golden image, with and without its refer box, before any sequence begins. */
static bool
prepare_vision(golden_case *gc, const groma_model *m, groma_arena *act)
{
	const groma_vision_result *vis;
	bool		ok = true;

	for (int c = 0; c < 3; c++)
		for (int r = 0; r < 2; r++)
		{
			groma_status st = golden_vision(c, r == 1, &gc[c], m, act, &vis);

			CHECKF(st.code == GROMA_OK, "%s vision: %s", golden_cases[c].name, st.message);
			ok = ok && st.code == GROMA_OK;
		}
	groma_arena_reset(act);
	return ok;
}

/* Checks a finished request's ids against the golden ones and ends it. */
static void
check_finished(batch_request *r, const char *how, groma_kv_pool *pool)
{
	bool		same = r->seq.failure.code == GROMA_OK && r->seq.n == (size_t) r->limit;

	for (size_t k = 0; same && k < r->seq.n; k++)
		same = r->seq.ids[k] == r->golden[k];
	CHECKF(same, "%s: %s %s: %zu ids differ from the golden ones", how, r->name, r->prompt, r->seq.n);
	groma_sequence_end(&r->seq, pool);
	r->checked = true;
}

/*
 * Runs every request with at most max_batch sequences per step, admitting
 * at most joins newcomers per step (so requests join mid-flight, their
 * prefills beside the others' decode tokens) and leaving a request queued
 * while the pool has no room; checks each request's ids.  With first_room
 * set a cache starts with room for that many new tokens and grows
 * (groma_sequence_make_room) before the step that would overflow it.
 */
static void
run_batched(int max_batch, int joins, int first_room, size_t pool_bytes, const groma_model *m,
			const groma_tokenizer *tok, groma_arena *act)
{
	batch_request req[N_REQUESTS];
	golden_case gc[3];
	groma_kv_pool pool;
	char		how[64];
	int			next_new = 0,
				steps = 0,
				busy_waits = 0,
				most = 0,
				most_prefills = 0,
				mixed_steps = 0,
				grown = 0,
				finished = 0;

	snprintf(how, sizeof(how), "batch %d, %d joining%s", max_batch, joins, first_room ? ", caches growing" : "");
	for (int c = 0; c < 3; c++)
		CHECK(golden_case_open(golden_cases[c].name, &gc[c]));
	load_requests(gc, req);
	CHECK(groma_kv_pool_init(&pool, act->device, pool_bytes).code == GROMA_OK);
	if (!prepare_vision(gc, m, act))
		finished = N_REQUESTS;
	while (finished < N_REQUESTS && steps < 200)
	{
		groma_sequence *live[N_REQUESTS];
		int			n_live = 0,
					prefills = 0;
		groma_status st = groma_ok();

		for (int i = 0; i < N_REQUESTS; i++)
			if (req[i].begun && !req[i].checked)
				live[n_live++] = &req[i].seq;
		for (int j = 0; j < joins && next_new < N_REQUESTS && n_live < max_batch; j++)
		{
			batch_request *r = &req[next_new];

			st = begin_request(r, next_new / 3, &gc[next_new / 3], m, tok, &pool, first_room, act);
			if (st.code == GROMA_ERR_BUSY)
			{
				busy_waits++;	/* the pool is full: it waits for a sequence to finish */
				break;
			}
			CHECKF(st.code == GROMA_OK, "%s %s: %s", r->name, r->prompt, st.message);
			r->begun = true;
			live[n_live++] = &r->seq;
			next_new++;
			prefills++;
		}
		most = n_live > most ? n_live : most;
		most_prefills = prefills > most_prefills ? prefills : most_prefills;
		mixed_steps += prefills > 0 && n_live > prefills;
		st = groma_ok();
		for (int i = 0; i < n_live && st.code == GROMA_OK; i++)
		{
			int64_t		capacity = live[i]->cache.capacity;

			st = groma_sequence_make_room(m, live[i], &pool);
			CHECKF(st.code == GROMA_OK, "step %d: room for a sequence: %s", steps, st.message);
			grown += live[i]->cache.capacity != capacity;
		}
		if (st.code == GROMA_OK)
			st = groma_sequence_step(m, tok, live, n_live, act);
		groma_arena_reset(act);	/* the newcomers' prompts have been read */
		CHECKF(st.code == GROMA_OK, "step %d: %s", steps, st.message);
		if (st.code != GROMA_OK)
			break;
		steps++;
		for (int i = 0; i < N_REQUESTS; i++)
			if (req[i].begun && !req[i].checked && req[i].seq.done)
			{
				check_finished(&req[i], how, &pool);
				finished++;
			}
	}
	CHECKF(finished == N_REQUESTS, "%s: %d of %d requests finished", how, finished, N_REQUESTS);
	CHECKF(pool.n_blocks == 0 && pool.used == 0, "%s: %d blocks still taken", how, pool.n_blocks);
	CHECKF(most <= max_batch && most >= (max_batch > 1 ? 2 : 1), "%s: at most %d sequences ran together", how, most);
	CHECKF(max_batch == 1 || mixed_steps > 0, "%s: no prefill ran beside a decode token", how);
	CHECKF(most_prefills == (joins < max_batch ? joins : max_batch), "%s: at most %d prefills in one step", how,
		   most_prefills);
	/*
	 * room for 1 new token at first (the prompt plus 1 position): limit 3
	 * grows once (to room 2), 7 three times (2, 4, 7), 12 four times (2, 4,
	 * 8, 12); three requests have each limit
	 */
	CHECKF(grown == (first_room == 1 ? 3 * (1 + 3 + 4) : 0), "%s: %d caches grew", how, grown);
	unit_note("%s: %s, pool %zu KB: %d steps, up to %d sequences and %d prefills together, %d mixed steps, "
			  "%d waits for the pool, %d caches grown, peak %zu KB", act->device == GROMA_DEVICE_CPU ? "CPU" : "device",
			  how, pool_bytes >> 10, steps, most, most_prefills, mixed_steps, busy_waits, grown, pool.peak >> 10);
	for (int c = 0; c < 3; c++)
		golden_case_close(&gc[c]);
	groma_kv_pool_free(&pool);
}

/* Frees the vision results kept between runs. */
static void
forget_vision(void)
{
	for (int c = 0; c < 3; c++)
		for (int r = 0; r < 2; r++)
		{
			groma_arena_free(&vision_out[c][r]);
			groma_arena_free(&vision_host[c][r]);
			vision_ready[c][r] = false;
		}
}

/* Batches of 1, 3 and 8 with m and act on any device; see golden_case.h. */
void
golden_decode_batch_parity(const groma_model *m, groma_arena *act)
{
	groma_tokenizer *tok = golden_tiny_tokenizer();
	/* a cache of 600 positions: more than any golden prompt plus 12 tokens */
	size_t		one = groma_kv_cache_bytes(&m->llm.cfg, 600);

	if (tok == NULL)
		return;
	run_batched(1, 1, 0, 16 * one, m, tok, act);
	run_batched(3, 1, 0, 16 * one, m, tok, act);
	run_batched(8, 1, 0, 16 * one, m, tok, act);
	run_batched(8, 3, 0, 16 * one, m, tok, act);	/* three prefills in one step, beside the others */
	run_batched(8, 1, 0, 2 * one, m, tok, act);	/* room for about two: the others wait */
	run_batched(8, 3, 1, 16 * one, m, tok, act);	/* caches from room for one new token, grown as they fill */
	forget_vision();
}

/* Batches of 1, 3 and 8 give each request its golden ids; a small pool makes requests wait, never fail. */
UNIT_TEST(test_decode_batch_golden_ids)
{
	groma_model *m = golden_tiny_model();
	groma_arena act = {0};

	if (m == NULL)
		return;
	CHECK(groma_arena_init(&act, (size_t) 1 << 30).code == GROMA_OK);
	golden_decode_batch_parity(m, &act);
	groma_arena_free(&act);
}

/* Peak act bytes above act->used of one groma_sequence_step over seqs[n]. */
static size_t
step_peak(const groma_model *m, const groma_tokenizer *tok, groma_sequence **seqs, int n, groma_arena *act)
{
	size_t		base = act->used;

	act->high_water = act->used;
	CHECK(groma_sequence_step(m, tok, seqs, n, act).code == GROMA_OK);
	return act->high_water - base;
}

/*
 * A step whose prefills do not fit the activation arena beside the others
 * splits: the decoding sequence steps, each prefill runs alone, and every
 * answer is still golden; a prefill that does not fit even alone fails only
 * its own sequence (GROMA_ERR_NO_MEMORY), the others go on.
 */
UNIT_TEST(test_sequence_step_splits_when_act_is_short)
{
	groma_model *m = golden_tiny_model();
	groma_tokenizer *tok = golden_tiny_tokenizer();
	batch_request req[N_REQUESTS];
	golden_case gc[3];
	groma_kv_pool pool;
	groma_arena big = {0},
				small = {0};
	groma_sequence *seqs[3];
	size_t		prompt[3],
				prefill[3],
				one_prefill,
				two_prefills,
				decode;

	if (m == NULL || tok == NULL)
		return;
	for (int c = 0; c < 3; c++)
		CHECK(golden_case_open(golden_cases[c].name, &gc[c]));
	load_requests(gc, req);
	CHECK(groma_arena_init(&big, (size_t) 1 << 30).code == GROMA_OK);
	CHECK(groma_kv_pool_init(&pool, GROMA_DEVICE_CPU, 8 * groma_kv_cache_bytes(&m->llm.cfg, 600)).code == GROMA_OK);
	if (!prepare_vision(gc, m, &big))
		goto out;
	seqs[0] = &req[0].seq;
	seqs[1] = &req[3].seq;
	seqs[2] = &req[6].seq;

	/* measured in the big arena (requests 0, 3 and 6: gcap of each image): prompts, prefills, a decode step */
	for (int i = 0; i < 3; i++)
	{
		CHECK(begin_request(&req[3 * i], i, &gc[i], m, tok, &pool, 0, &big).code == GROMA_OK);
		prompt[i] = big.used;
		prefill[i] = step_peak(m, tok, &seqs[i], 1, &big);
		groma_arena_reset(&big);
	}
	decode = step_peak(m, tok, seqs, 1, &big);
	for (int i = 0; i < 9; i += 3)
		groma_sequence_end(&req[i].seq, &pool);
	load_requests(gc, req);
	CHECK(begin_request(&req[3], 1, &gc[1], m, tok, &pool, 0, &big).code == GROMA_OK);
	CHECK(begin_request(&req[6], 2, &gc[2], m, tok, &pool, 0, &big).code == GROMA_OK);
	two_prefills = step_peak(m, tok, &seqs[1], 2, &big);
	groma_arena_reset(&big);
	one_prefill = prefill[1] > prefill[2] ? prefill[1] : prefill[2];
	unit_note("act peaks: prefills %zu, %zu and %zu KB alone, two together %zu KB, a decode step %zu KB",
			  prefill[0] >> 10, prefill[1] >> 10, prefill[2] >> 10, two_prefills >> 10, decode >> 10);
	CHECKF(two_prefills > one_prefill + one_prefill / 8 && decode < prefill[1] / 2,
		   "the peaks leave room for the test: one %zu, two %zu, decode %zu", one_prefill, two_prefills, decode);
	groma_sequence_end(&req[3].seq, &pool);
	groma_sequence_end(&req[6].seq, &pool);
	load_requests(gc, req);

	/* room for two prompts and one prefill, not two: request 0 decoding, 3 and 6 prefill alone */
	CHECK(groma_arena_init(&small, prompt[1] + prompt[2] + (one_prefill + two_prefills) / 2).code == GROMA_OK);
	CHECK(begin_request(&req[0], 0, &gc[0], m, tok, &pool, 0, &big).code == GROMA_OK);
	CHECK(groma_sequence_step(m, tok, seqs, 1, &big).code == GROMA_OK);	/* its prefill */
	groma_arena_reset(&big);
	CHECK(begin_request(&req[3], 1, &gc[1], m, tok, &pool, 0, &small).code == GROMA_OK);
	CHECK(begin_request(&req[6], 2, &gc[2], m, tok, &pool, 0, &small).code == GROMA_OK);
	CHECK(groma_sequence_step(m, tok, seqs, 3, &small).code == GROMA_OK);
	CHECK(req[3].seq.prefilled && req[6].seq.prefilled && req[0].seq.n == 2 && req[3].seq.n == 1);
	CHECK(req[3].seq.prefill_alone && req[6].seq.prefill_alone && !req[0].seq.prefill_alone);
	while (!req[0].seq.done || !req[3].seq.done || !req[6].seq.done)
	{
		groma_arena_reset(&small);
		CHECK(groma_sequence_step(m, tok, seqs, 3, &small).code == GROMA_OK);
	}
	for (int i = 0; i < 9; i += 3)
		check_finished(&req[i], "split step", &pool);
	load_requests(gc, req);

	/* room for a prompt and a decode step only: request 3's prefill fails alone, request 0 goes on */
	groma_arena_free(&small);
	CHECK(groma_arena_init(&small, prompt[1] + decode + (prefill[1] - decode) / 4).code == GROMA_OK);
	CHECK(begin_request(&req[0], 0, &gc[0], m, tok, &pool, 0, &big).code == GROMA_OK);
	CHECK(groma_sequence_step(m, tok, seqs, 1, &big).code == GROMA_OK);
	groma_arena_reset(&big);
	CHECK(begin_request(&req[3], 1, &gc[1], m, tok, &pool, 0, &small).code == GROMA_OK);
	CHECK(groma_sequence_step(m, tok, seqs, 2, &small).code == GROMA_OK);
	CHECKF(req[3].seq.done && req[3].seq.failure.code == GROMA_ERR_NO_MEMORY && req[3].seq.n == 0,
		   "a prefill too large alone fails its sequence: %s", req[3].seq.failure.message);
	while (!req[0].seq.done)
	{
		groma_arena_reset(&small);
		CHECK(groma_sequence_step(m, tok, seqs, 2, &small).code == GROMA_OK);
	}
	check_finished(&req[0], "beside a failed prefill", &pool);
	groma_sequence_end(&req[3].seq, &pool);
	CHECK(pool.n_blocks == 0 && pool.used == 0);
out:
	for (int c = 0; c < 3; c++)
		golden_case_close(&gc[c]);
	forget_vision();
	groma_kv_pool_free(&pool);
	groma_arena_free(&big);
	groma_arena_free(&small);
}

/* The pool: first fit, blocks given back merge into gaps, a cache larger than the pool is a limit. */
UNIT_TEST(test_kv_pool_blocks)
{
	groma_llama_config cfg = {.hidden = 32, .layers = 2, .heads = 4, .kv_heads = 4, .intermediate = 64,
	.vocab = 10, .extra_vocab = 2, .rms_eps = 1e-5f, .rope_theta = 10000.0f};
	size_t		one = groma_kv_cache_bytes(&cfg, 100);
	groma_kv_pool pool;
	groma_kv_cache a,
				b,
				c,
				d;
	groma_status st;

	CHECK(groma_kv_pool_init(&pool, GROMA_DEVICE_CPU, 3 * one + 3 * GROMA_ARENA_ALIGN).code == GROMA_OK);
	CHECK(groma_kv_pool_take(&pool, &cfg, 100, &a).code == GROMA_OK);
	CHECK(groma_kv_pool_take(&pool, &cfg, 100, &b).code == GROMA_OK);
	CHECK(groma_kv_pool_take(&pool, &cfg, 100, &c).code == GROMA_OK);
	st = groma_kv_pool_take(&pool, &cfg, 100, &d);
	CHECKF(st.code == GROMA_ERR_BUSY, "a full pool says busy, got %s", st.message);
	CHECK(a.capacity == 100 && a.length == 0 && (uint8_t *) b.k.data > (uint8_t *) a.v.data);
	groma_kv_pool_give(&pool, &b);
	CHECK(pool.n_blocks == 2 && b.k.data == NULL);
	st = groma_kv_pool_take(&pool, &cfg, 200, &d);
	CHECKF(st.code == GROMA_ERR_BUSY, "a middle gap too small for 200 positions, got %s", st.message);
	CHECK(groma_kv_pool_take(&pool, &cfg, 50, &d).code == GROMA_OK);	/* first fit: b's old place */
	CHECK((uint8_t *) d.k.data < (uint8_t *) c.k.data && (uint8_t *) d.k.data > (uint8_t *) a.k.data);
	st = groma_kv_pool_take(&pool, &cfg, 1000, &b);
	CHECKF(st.code == GROMA_ERR_LIMIT, "a cache larger than the pool is a limit, got %s", st.message);
	groma_kv_pool_give(&pool, &a);
	groma_kv_pool_give(&pool, &c);
	groma_kv_pool_give(&pool, &d);
	CHECK(pool.n_blocks == 0 && pool.used == 0 && pool.peak >= 3 * one);
	groma_kv_pool_free(&pool);
}
