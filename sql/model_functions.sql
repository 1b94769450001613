-- The model functions on the bundled tiny model (random weights: the text
-- is gibberish by design), each compared with groma-server's command line
-- for the same image and prompt (so the golden runs carry over).  The
-- cluster of test/run.sh has no model: this file points groma.model_path at
-- a copy of the tiny model ($GROMA_REGRESS_MODEL, readable by the server)
-- with ALTER SYSTEM, and resets it at the end.  $GROMA_SERVER is the
-- installed groma-server.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS groma;
RESET client_min_messages;
\getenv abs_srcdir PG_ABS_SRCDIR
\getenv model GROMA_REGRESS_MODEL
\getenv server GROMA_SERVER
\set path :abs_srcdir/test/golden/images/synthetic_333x251.jpg
\set b64 `base64 -w0 :'path'`
CREATE TEMP TABLE img AS SELECT decode(:'b64', 'base64') AS data;

-- Waits (up to 60 s) until server 0 reports state; returns it.
CREATE FUNCTION wait_for_state(want text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    got text;
BEGIN
    FOR i IN 1..1200 LOOP
        SELECT state INTO got FROM groma_status() WHERE server = 0;
        EXIT WHEN got = want;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN got;
END $$;

ALTER SYSTEM SET groma.model_path = :'model';
SELECT pg_reload_conf();
SELECT wait_for_state('ready');
-- the CPU keeps the matrices in f32 (groma.weights names the GPU's type)
SELECT weights FROM groma_status();
SET groma.max_new_tokens = 12;

-- groma_regions: the boxes, scores and order of --regions, idx from 1,
-- every box inside the 333x251 image, 32-wide embeddings (the tiny model's
-- region feature)
\set cli `:'server' --model :'model' --device cpu --regions :'path' --embeddings`
CREATE TEMP TABLE cli_regions AS
SELECT k::int AS idx, (r->'box'->>0)::float8 AS x1, (r->'box'->>1)::float8 AS y1,
       (r->'box'->>2)::float8 AS x2, (r->'box'->>3)::float8 AS y2, (r->>'score')::float8 AS score,
       ARRAY(SELECT jsonb_array_elements_text(r->'embedding')::real) AS embedding
FROM jsonb_array_elements(:'cli'::jsonb->'regions') WITH ORDINALITY AS e(r, k);
SELECT count(*) AS regions FROM groma_regions((SELECT data FROM img));
SELECT g.idx, round(g.score::numeric, 2) AS score, array_length(g.embedding, 1) AS dims,
       abs((g.area[1])[0] - c.x1) < 1e-6 AND abs((g.area[1])[1] - c.y1) < 1e-6
       AND abs((g.area[0])[0] - c.x2) < 1e-6 AND abs((g.area[0])[1] - c.y2) < 1e-6 AS box_as_cli,
       abs(g.score - c.score) < 1e-6 AS score_as_cli,
       g.embedding = c.embedding AS embedding_as_cli,
       (g.area[1])[0] >= 0 AND (g.area[1])[1] >= 0 AND (g.area[0])[0] <= 333 AND (g.area[0])[1] <= 251 AS inside
FROM groma_regions((SELECT data FROM img), 5) g JOIN cli_regions c USING (idx)
ORDER BY g.idx;

-- groma_proposals: the same boxes as an array; max_regions and min_score cut them
SELECT array_length(groma_proposals(data), 1) = (SELECT count(*) FROM cli_regions) AS all_boxes,
       (groma_proposals(data))[2] ~= (SELECT area FROM groma_regions(data) WHERE idx = 2) AS second_is_region_2,
       array_length(groma_proposals(data, 3), 1) AS top_3,
       array_length(groma_proposals(data, 100, 0.3), 1) = (SELECT count(*) FROM cli_regions WHERE score > 0.3)
           AS above_0_3
FROM img;

-- groma_caption: the text and groundings of --task caption / caption-detailed
\set cli `:'server' --model :'model' --device cpu --image :'path' --task caption --max-new-tokens 12`
SELECT (c).text, (c).groundings, (c).text = :'cli'::jsonb->>'text' AS text_as_cli,
       coalesce(array_length((c).groundings, 1), 0) = jsonb_array_length(:'cli'::jsonb->'groundings') AS groundings_as_cli
FROM (SELECT groma_caption(data) AS c FROM img) s;
\set cli `:'server' --model :'model' --device cpu --image :'path' --task caption-detailed --max-new-tokens 12`
SELECT (c).text, (c).text = :'cli'::jsonb->>'text' AS text_as_cli
FROM (SELECT groma_caption(data, detailed => true) AS c FROM img) s;

-- groma_ground: the boxes of --task ground's answer (the tiny model grounds nothing)
\set cli `:'server' --model :'model' --device cpu --image :'path' --task ground --phrase 'the red square' --max-new-tokens 12`
SELECT groma_ground(data, 'the red square') AS boxes,
       cardinality(groma_ground(data, 'the red square')) =
           (SELECT count(*) FROM jsonb_array_elements(:'cli'::jsonb->'groundings') g,
                                 jsonb_array_elements(g->'boxes')) AS count_as_cli
FROM img;

-- groma_describe: the text of --task describe with the box as --refer
\set cli `:'server' --model :'model' --device cpu --image :'path' --task describe --refer 10,20,100,90 --max-new-tokens 12`
SELECT groma_describe(data, box '((100,90),(10,20))') AS description,
       groma_describe(data, box '((100,90),(10,20))') = :'cli'::jsonb->>'text' AS as_cli
FROM img;
-- a box thinner than the model's 32-bit coordinates can tell apart is refused (it was matched to another region)
SELECT groma_describe(data, box '((300,200),(300.00001,200.00001))') FROM img;

-- groma_chat: a free prompt with a refer box, as --prompt with --refer
\set cli `:'server' --model :'model' --device cpu --image :'path' --prompt 'Is <roi><refer_box></roi><refer_feat> red?' --refer 10,20,100,90 --max-new-tokens 12`
SELECT (a).text, (a).text = :'cli'::jsonb->>'text' AS as_cli
FROM (SELECT groma_chat(data, 'Is <roi><refer_box></roi><refer_feat> red?', ARRAY[box '((100,90),(10,20))']) AS a
      FROM img) s;

-- groma.max_new_tokens bounds the answer: fewer tokens, a prefix of the text
SET groma.max_new_tokens = 3;
SELECT starts_with(:'cli'::jsonb->>'text', (groma_chat(data, 'Is <roi><refer_box></roi><refer_feat> red?',
                                                         ARRAY[box '((100,90),(10,20))'])).text) AS prefix
FROM img;
RESET groma.max_new_tokens;

-- The array forms answer each element as the one-image functions do, subscripts kept (NULL for NULL);
-- one request in flight, so no two images share a vision batch and the answers are bit for bit the same.
SET groma.bulk_in_flight = 1;
CREATE TEMP TABLE arr AS
SELECT data, ('[3:5]={"' || replace(data::text, '\', '\\') || '",NULL,"' || replace(data::text, '\', '\\') || '"}')::bytea[]
       AS imgs
FROM img;
SELECT g.ord, cardinality(g.boxes) AS n_boxes, g.boxes::text = groma_ground(data, 'the man')::text AS as_one,
       g.boxes IS NULL AS null_boxes
FROM arr, groma_ground_many(imgs, 'the man') g ORDER BY g.ord;
SET groma.max_new_tokens = 12;  -- (the grounding above needs the default 1024: the tiny model grounds late)
SELECT k, length((answers[k]).text) AS text_length,
       answers[k]::text = groma_chat(data, 'What is in the picture?')::text AS as_one,
       answers[k] IS NULL AS null_answer
FROM (SELECT data, groma_chat_many(imgs, 'What is in the picture?') AS answers FROM arr) c,
     generate_subscripts(answers, 1) k ORDER BY k;
DROP TABLE arr;
RESET groma.bulk_in_flight;
-- a limit that is not about the image (the model's context) is not blamed on an image of the array
SET groma.max_new_tokens = 4096;
SELECT groma_chat_many(ARRAY[data, data], 'What is in the picture?') FROM img;
RESET groma.max_new_tokens;

-- groma_progress's sums cannot overflow, whatever a session reports of itself (any role may call the internal
-- groma_progress_* functions: an array call after a job of 2^63-1 rows done broke the view for every reader)
SET groma.max_new_tokens = 2;
SELECT groma_progress_begin('pg_class', 1), groma_progress_advance(9223372036854775807);
SELECT cardinality(groma_caption_many(ARRAY[data])) FROM img;
SELECT rows_done, chunk_done, rows_per_second > 0 AS moving FROM groma_progress WHERE pid = pg_backend_pid();
SELECT groma_progress_end();
RESET groma.max_new_tokens;

-- back to no model, as the other files expect
ALTER SYSTEM RESET groma.model_path;
SELECT pg_reload_conf();
SELECT wait_for_state('no_model');
DROP FUNCTION wait_for_state(text);
