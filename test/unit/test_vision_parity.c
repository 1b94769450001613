/*
 * test_vision_parity.c - the vision pipeline on the tiny checkpoint equals
 * the golden PyTorch run stage by stage (GROMA.md steps 1-6), with every
 * decision (top-k, NMS kept indices, refer match) identical and errors
 * below the fragility margins.  Per-layer internals that only the full
 * cases hold (../shared/golden/cases) are compared when present.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "golden_case.h"
#include "../../src/model/groma_model.h"
#include "../../src/runtime/ops.h"

/* Checks that the region features (embeddings) are flatten_linear + pos_embedd exactly. */
static void
check_region_features(const groma_tensor *flat, const groma_tensor *pos, const groma_tensor *feat)
{
	size_t		n = (size_t) (flat->shape[0] * flat->shape[1]);
	float	   *f = malloc(sizeof(float) * n),
			   *p = malloc(sizeof(float) * n),
			   *e = malloc(sizeof(float) * n);
	size_t		bad = 0;

	CHECK(f && p && e);
	CHECK(feat->shape[0] == flat->shape[0] && feat->shape[1] == flat->shape[1]);
	CHECK(groma_download(flat, f).code == GROMA_OK && groma_download(pos, p).code == GROMA_OK &&
		  groma_download(feat, e).code == GROMA_OK);
	for (size_t i = 0; i < n; i++)
		bad += e[i] != f[i] + p[i];
	CHECKF(bad == 0, "%zu of %zu region features differ from flatten_linear + pos_embedd", bad, n);
	free(f);
	free(p);
	free(e);
}

/* Compares selection and region tokens of one variant ("noref" or "ref"); tensors may live on a device. */
static void
check_selection(const golden_case *gc, const groma_model *m, const groma_proposer_outputs *o,
				const groma_tensor *hidden, bool with_refer, groma_arena *act)
{
	const char *v = with_refer ? "ref" : "noref";
	int64_t		k = m->proposer.cfg.num_queries,
				n_ref = 0;
	float	   *refer = with_refer ? golden_f32(gc, "sel.ref.refer_box", &n_ref) : NULL;
	int64_t		kept[512],
				match = -1;
	float		selected[512 * 4],
				ious[512];
	int			count = 0;
	char		name[128];
	groma_region_maps maps;
	groma_tensor tokens,
				flat,
				pos,
				feat;
	float		rois[512 * 5];
	size_t		mark = act->used;
	groma_status st;
	groma_tensor last_boxes;
	float	   *boxes;

	if (with_refer && refer == NULL)
	{
		unit_fail(__FILE__, __LINE__, "%s: no golden refer box", gc->name);
		return;
	}
	/* the last decoder layer's boxes, on the host (scores are host memory already) */
	st = groma_tensor_narrow(&o->boxes, 0, m->proposer.cfg.decoder_layers - 1, 1, &last_boxes);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	boxes = st.code == GROMA_OK ? golden_host_copy(&last_boxes) : NULL;
	if (boxes == NULL)
	{
		free(refer);
		return;
	}
	st = groma_select_regions(boxes, o->scores.data, (int) k, refer, (int) (n_ref / 4), &m->select, kept, selected,
							  &count);
	free(boxes);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	snprintf(name, sizeof(name), "sel.%s.kept_indices", v);
	golden_compare_ids(gc, name, kept, count);
	snprintf(name, sizeof(name), "sel.%s.selected_boxes", v);
	golden_compare(gc, name, selected, count * 4);
	if (with_refer)
	{
		CHECK(groma_match_refer_boxes(refer, 1, selected, count, &match, ious).code == GROMA_OK);
		golden_compare_ids(gc, "sel.ref.refer_match", &match, 1);
		golden_compare(gc, "sel.ref.refer_ious", ious, count);
	}

	st = groma_region_fuse(&m->region, hidden, act, act, &maps);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	if (!with_refer && gc->full)
		golden_compare_tensor(gc, "region.fused_l2", &maps.level[2]);
	CHECK(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {count, m->region.out}, &tokens).code == GROMA_OK);
	CHECK(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {count, m->region.mid}, &flat).code == GROMA_OK);
	CHECK(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {count, m->region.mid}, &pos).code == GROMA_OK);
	CHECK(groma_arena_tensor(act, GROMA_F32, 2, (int64_t[]) {count, m->region.mid}, &feat).code == GROMA_OK);
	st = groma_region_tokens(&m->region, &maps, 0, selected, count, act, &tokens, rois, &flat, &pos, &feat);
	CHECKF(st.code == GROMA_OK, "%s", st.message);
	check_region_features(&flat, &pos, &feat);
	snprintf(name, sizeof(name), "region.%s.rois", v);
	golden_compare(gc, name, rois, count * 5);
	snprintf(name, sizeof(name), "region.%s.flatten_linear", v);
	golden_compare_tensor(gc, name, &flat);
	snprintf(name, sizeof(name), "region.%s.pos_embedd", v);
	golden_compare_tensor(gc, name, &pos);
	snprintf(name, sizeof(name), "region.%s.features", v);
	golden_compare_tensor(gc, name, &tokens);
	free(refer);
	act->used = mark;
}

/* Runs one golden case through every vision stage (act and m on the CPU or a device; host: host memory). */
static void
check_case(const golden_case_name *cn, const groma_model *m, groma_arena *act, groma_arena *host)
{
	golden_case gc;
	groma_tensor pixels,
				hidden,
				merged,
				feats,
				last,
				probe[4];
	groma_dinov2_probe dprobe;
	groma_proposer_outputs o;
	const groma_dinov2_config *vc = &m->vision.cfg;
	int64_t		t = groma_dinov2_tokens(vc),
				c = vc->hidden,
				k = m->proposer.cfg.num_queries,
				l = m->proposer.cfg.decoder_layers,
				hw;
	double		err,
				margin;
	size_t		mark = act->used,
				host_mark = host->used;
	float	   *host_pixels;

	if (!golden_case_open(cn->name, &gc))
		return;
	host_pixels = malloc((size_t) 3 * 448 * 448 * sizeof(float));
	if (gc.full == NULL)
		unit_note("%s: full per-layer case not found (../shared/golden/cases or $GROMA_SHARED_GOLDEN): "
				  "comparing the compact tensors only", cn->name);
	CHECK(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {1, 3, 448, 448}, &pixels).code == GROMA_OK);
	if (host_pixels == NULL || !golden_image_pixels(cn->image, host_pixels) || !golden_fill_tensor(host_pixels, &pixels))
		goto done;
	if (gc.full)
		golden_compare(&gc, "image.pixel_values", host_pixels, groma_tensor_numel(&pixels));

	/* DINOv2 with layer-0 internals */
	CHECK(groma_arena_tensor(act, GROMA_F32, 4, (int64_t[]) {vc->layers + 1, 1, t, c}, &hidden).code == GROMA_OK);
	for (int i = 0; i < 4; i++)
		CHECK(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {1, t, c}, &probe[i]).code == GROMA_OK);
	dprobe = (groma_dinov2_probe) {&probe[0], &probe[1], &probe[2], &probe[3]};
	CHECK(groma_dinov2_forward(&m->vision, &pixels, act, &hidden, &dprobe).code == GROMA_OK);
	/* layer-0 internals: the manifest lists them for some cases only */
	if (golden_has(&gc, "dino.l0_norm1"))
	{
		golden_compare_tensor(&gc, "dino.l0_norm1", &probe[0]);
		golden_compare_tensor(&gc, "dino.l0_attn_out", &probe[1]);
		golden_compare_tensor(&gc, "dino.l0_after_attn", &probe[2]);
		golden_compare_tensor(&gc, "dino.l0_mlp_out", &probe[3]);
	}
	if (gc.full)
		golden_compare_tensor(&gc, "dino.hidden_states", &hidden);

	/* image tokens */
	CHECK(groma_tensor_narrow(&hidden, 0, vc->layers, 1, &last).code == GROMA_OK);
	CHECK(groma_tensor_reshape(&last, 3, (int64_t[]) {1, t, c}, &last).code == GROMA_OK);
	hw = (t - 1) / 4;
	CHECK(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {1, hw, 4 * c}, &merged).code == GROMA_OK);
	CHECK(groma_arena_tensor(act, GROMA_F32, 3, (int64_t[]) {1, hw, m->llm.cfg.hidden}, &feats).code == GROMA_OK);
	CHECK(groma_merge_neighbours(&last, &merged).code == GROMA_OK);
	if (gc.full)
		golden_compare_tensor(&gc, "merge.image_tokens", &merged);
	CHECK(groma_bridge_forward(&m->bridge, &merged, act, &feats).code == GROMA_OK);
	golden_compare_tensor(&gc, "bridge.image_features", &feats);

	/* proposer */
	CHECK(groma_proposer_forward(&m->proposer, &hidden, act, act, host, &o).code == GROMA_OK);
	err = golden_compare_tensor(&gc, "ddetr.enc_outputs_class", &o.enc_class);
	margin = golden_fragility(cn->name, "topk_margin");
	CHECKF(margin < 0 || err < margin / 2, "%s: class logit error %g is not below half the top-k margin %g",
		   cn->name, err, margin);
	golden_compare_tensor(&gc, "ddetr.enc_outputs_coord_logits", &o.enc_coord_logits);
	golden_compare_ids(&gc, "ddetr.topk_indices", o.topk, k);
	golden_compare_tensor(&gc, "ddetr.init_reference_points", &o.init_ref);
	golden_compare_tensor(&gc, "ddetr.query_pos", &o.query_pos);
	golden_compare_tensor(&gc, "ddetr.dec_hidden", &o.dec_hidden);
	golden_compare_tensor(&gc, "ddetr.dec_inter_references", &o.inter_ref);
	golden_compare_tensor(&gc, "ddetr.logits_coco", &o.logits_coco);
	golden_compare_tensor(&gc, "ddetr.logits_sa1b", &o.logits_sa1b);
	golden_compare_tensor(&gc, "ddetr.boxes_per_level", &o.boxes);
	{
		groma_tensor last;

		CHECK(groma_tensor_narrow(&o.boxes, 0, l - 1, 1, &last).code == GROMA_OK);
		golden_compare_tensor(&gc, "ddetr.pred_boxes", &last);
	}
	err = golden_compare(&gc, "ddetr.scores", o.scores.data, k);
	margin = golden_fragility(cn->name, "nms_noref.min_abs_score_minus_thres");
	CHECKF(margin < 0 || err < margin, "%s: score error %g is not below the NMS score margin %g", cn->name, err, margin);

	/* selection and region tokens, without and with the golden refer box */
	check_selection(&gc, m, &o, &hidden, false, act);
	check_selection(&gc, m, &o, &hidden, true, act);
done:
	golden_case_close(&gc);
	free(host_pixels);
	act->used = mark;
	host->used = host_mark;
}

/* Every golden case through the vision stages of m; see golden_case.h. */
void
golden_vision_parity(const groma_model *m, groma_arena *act, groma_arena *host)
{
	for (int i = 0; i < 3; i++)
		check_case(&golden_cases[i], m, act, host);
}

/* Every golden image through DINOv2, bridge, proposer, selection and region encoder. */
UNIT_TEST(test_vision_parity_golden)
{
	groma_model *m = golden_tiny_model();
	groma_arena act;

	if (m == NULL)
		return;
	CHECK(groma_arena_init(&act, (size_t) 1 << 30).code == GROMA_OK);
	golden_vision_parity(m, &act, &act);
	groma_arena_free(&act);
}
