-- The model functions refuse bad arguments in the backend, before anything
-- is sent to groma-server, each with a clear ERROR and a specific SQLSTATE.
-- This cluster has groma preloaded and no model (as test/run.sh sets it
-- up), so a call whose arguments pass every check reaches the server and
-- fails there with 55000 (no model is loaded): that is the mark of "passed
-- the backend's checks" below.  What needs the model (decoding errors past
-- the JPEG header, max_regions over the model's limit, phrases the model's
-- prompt refuses) is tested with the tiny model in test/pg/008_sql_functions.t.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS groma;
RESET client_min_messages;
\getenv abs_srcdir PG_ABS_SRCDIR
\set b64 `base64 -w0 :'abs_srcdir'/test/golden/images/synthetic_333x251.jpg`
CREATE TEMP TABLE img AS SELECT decode(:'b64', 'base64') AS data;

-- wait (up to 10 s) for the launcher to have the server answering
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        EXIT WHEN EXISTS (SELECT FROM groma_status() WHERE state NOT IN ('stopped', 'starting', 'running', 'backoff'));
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;

-- SQLSTATE of a statement ('ok' when it succeeds).
CREATE FUNCTION sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;

-- NULL in, NULL out (STRICT); groma_chat's refer may be NULL.  An untyped NULL resolves to the one-image
-- functions (the array forms have names of their own).
SELECT groma_caption(NULL) IS NULL AS caption, groma_caption(data, NULL) IS NULL AS caption_detailed,
       groma_ground(NULL, 'x') IS NULL AS ground_img, groma_ground(data, NULL) IS NULL AS ground_phrase,
       groma_describe(NULL, box '((1,1),(2,2))') IS NULL AS describe_img,
       groma_describe(data, NULL) IS NULL AS describe_area,
       groma_proposals(NULL) IS NULL AS proposals_img, groma_proposals(data, NULL) IS NULL AS proposals_max,
       groma_proposals(data, 10, NULL) IS NULL AS proposals_min,
       groma_chat(NULL, 'x') IS NULL AS chat_img, groma_chat(data, NULL) IS NULL AS chat_prompt
FROM img;
SELECT count(*) AS regions_of_null FROM groma_regions(NULL);
-- so do untyped bind parameters, as drivers that send parameters without a type use them
PREPARE untyped_params AS SELECT groma_caption($1) IS NULL AS caption, groma_chat($1, $2) IS NULL AS chat,
                                 groma_ground($1, $2) IS NULL AS ground, groma_proposals($1) IS NULL AS proposals,
                                 (SELECT count(*) FROM groma_regions($1)) AS regions;
EXECUTE untyped_params(NULL, 'x');
DEALLOCATE untyped_params;
SELECT count(*) AS regions_of_null_max FROM img, groma_regions(data, NULL);

-- Bad images: the same header classes as groma_image_info, for every function.
CREATE TEMP TABLE bad (name text PRIMARY KEY, data bytea);
INSERT INTO bad VALUES ('empty', ''::bytea), ('1_byte', '\xff'::bytea), ('3_bytes', '\xffd8ff'::bytea),
    ('text', 'abc'::bytea);
INSERT INTO bad SELECT 'cut_header', substring(data FROM 1 FOR 100) FROM img;
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/huge_65500.jpg`
INSERT INTO bad VALUES ('huge_65500x65500', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/zero_height.jpg`
INSERT INTO bad VALUES ('zero_height', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/not_jpeg.png`
INSERT INTO bad VALUES ('png', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/not_jpeg.gif`
INSERT INTO bad VALUES ('gif', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/twelve_bit.jpg`
INSERT INTO bad VALUES ('12_bit', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/cmyk.jpg`
INSERT INTO bad VALUES ('cmyk', decode(:'b64', 'base64'));
SELECT groma_caption(data) FROM bad WHERE name = 'png';
-- a valid header followed by more bytes than a request carries (256 MB) is refused before anything is sent
SELECT groma_caption(data || repeat('x', 268435457 - length(data))::bytea) FROM img;
SELECT groma_ground(data, 'a dog') FROM bad WHERE name = 'cut_header';
SELECT groma_proposals(data) FROM bad WHERE name = 'huge_65500x65500';
SELECT name,
       sqlstate_of(format('SELECT groma_image_info(%L::bytea)', data)) AS info,
       sqlstate_of(format('SELECT groma_caption(%L::bytea)', data)) AS caption,
       sqlstate_of(format('SELECT groma_ground(%L::bytea, %L)', data, 'a dog')) AS ground,
       sqlstate_of(format('SELECT groma_describe(%L::bytea, %L)', data, '((1,1),(2,2))')) AS describe,
       sqlstate_of(format('SELECT * FROM groma_regions(%L::bytea)', data)) AS regions,
       sqlstate_of(format('SELECT groma_proposals(%L::bytea)', data)) AS proposals,
       sqlstate_of(format('SELECT groma_chat(%L::bytea, %L)', data, 'What is this?')) AS chat
FROM bad ORDER BY name;

-- Refer and area boxes (the image is 333x251): finite, not empty, inside the image.
SELECT groma_describe(data, box '((10,10),(10,20))') FROM img;
SELECT groma_describe(data, box '((NaN,0),(10,10))') FROM img;
SELECT groma_describe(data, box '((0,0),(Infinity,10))') FROM img;
SELECT groma_describe(data, box '((0,0),(400,10))') FROM img;
SELECT groma_describe(data, box '((-1,0),(10,10))') FROM img;
SELECT groma_describe(data, box '((0,0),(333.0000001,251))') FROM img;
SELECT groma_chat(data, '<refer_box> and <refer_box>?', ARRAY[box '((1,1),(5,5))', box '((5,5),(5,9))']) FROM img;
SELECT groma_chat(data, 'x', ARRAY[NULL::box]) FROM img;
SELECT groma_chat(data, 'x', (SELECT array_agg(box '((1,1),(2,2))') FROM generate_series(1, 17))) FROM img;
SELECT groma_chat(data, 'x', ARRAY[[box '((1,1),(2,2))']]) FROM img;
-- box orders its corners itself: "inverted" corners are the same box, so it is accepted
SELECT box '((20,10),(10,20))' ~= box '((10,10),(20,20))' AS same_box, box '((20,10),(10,20))' AS stored;
SELECT sqlstate_of(format('SELECT groma_describe(%L::bytea, %L)', data, '((20,10),(10,20))')) AS inverted,
       sqlstate_of(format('SELECT groma_describe(%L::bytea, %L)', data, '((0,0),(333,251))')) AS whole_image,
       sqlstate_of(format('SELECT groma_chat(%L::bytea, %L, %L::box[])', data, 'x',
                          (SELECT array_agg(box '((1,1),(2,2))') FROM generate_series(1, 16)))) AS refer_16
FROM img;

-- Prompts: not empty, at most 65536 bytes; phrases at most 65508 (the ground query wrapping one, 65536).
SELECT groma_ground(data, '') FROM img;
SELECT groma_chat(data, '') FROM img;
SELECT groma_ground(data, repeat('a', 65509)) FROM img;
SELECT groma_chat(data, repeat('a', 65537)) FROM img;
SELECT sqlstate_of(format('SELECT groma_ground(%L::bytea, %L)', data, repeat('a', 65508))) AS phrase_at_limit,
       sqlstate_of(format('SELECT groma_chat(%L::bytea, %L)', data, repeat('a', 65536))) AS prompt_at_limit
FROM img;

-- max_regions at least 1 (the model's own limit is checked by the server), min_score within [0, 1].
SELECT groma_proposals(data, 0) FROM img;
SELECT * FROM img, groma_regions(data, -5);
SELECT groma_proposals(data, 10, -0.1) FROM img;
SELECT groma_proposals(data, 10, 1.5) FROM img;
SELECT * FROM img, groma_regions(data, 10, 'NaN');
-- the refused value is printed as given, not rounded to look allowed
SELECT groma_proposals(data, 10, 1.0000001) FROM img;
SELECT * FROM groma_regions_many(ARRAY[(SELECT data FROM img)], 0);
SELECT * FROM groma_regions_many(ARRAY[(SELECT data FROM img)], 5, 2);
-- The array forms of groma_ground and groma_chat: the phrase or prompt, the array's shape and every
-- image header are checked before anything is sent; an image's error names its subscript.
SELECT * FROM groma_ground_many(ARRAY[(SELECT data FROM img)], '');
SELECT groma_chat_many(ARRAY[(SELECT data FROM img)], repeat('a', 65537));
SELECT * FROM groma_ground_many(ARRAY[[(SELECT data FROM img)]], 'x');
SELECT groma_chat_many(ARRAY[[(SELECT data FROM img)]], 'x');
SELECT * FROM groma_ground_many((SELECT ('[0:1]={"' || replace(data::text, '\', '\\') || '","\\xffd8ff"}')::bytea[] FROM img),
                           'x');
SELECT groma_chat_many(ARRAY[(SELECT data FROM img), 'GIF89a'::bytea], 'x');
-- empty arrays and NULL elements need no server; a NULL phrase or prompt gives nothing (STRICT)
SELECT count(*) AS no_rows FROM groma_ground_many('{}'::bytea[], 'x');
SELECT groma_chat_many('{}'::bytea[], 'x') AS empty, groma_chat_many(ARRAY[NULL::bytea, NULL], 'x') AS nulls;
SELECT * FROM groma_ground_many(ARRAY[NULL::bytea], 'x');
SELECT count(*) AS no_rows FROM groma_ground_many(ARRAY[NULL::bytea], NULL);
SELECT groma_chat_many(ARRAY[NULL::bytea], NULL) IS NULL AS null_prompt;
SELECT sqlstate_of(format('SELECT groma_proposals(%L::bytea, 1, 0)', data)) AS edges_low,
       sqlstate_of(format('SELECT groma_proposals(%L::bytea, 100, 1)', data)) AS edges_high
FROM img;

-- Arguments that pass every check reach the server, which has no model here.
SELECT groma_caption(data, true) FROM img;
SELECT * FROM img, groma_regions(data);
SELECT * FROM groma_ground_many(ARRAY[(SELECT data FROM img)], 'x');
SELECT groma_chat_many(ARRAY[NULL, (SELECT data FROM img)], 'x');

-- The session keeps working.
SELECT 1 AS still_alive;
SELECT width, height FROM img, groma_image_info(data);

-- Volatility, strictness and comments of the model functions.
SELECT p.oid::regprocedure AS function, p.provolatile AS volatile, p.proisstrict AS strict,
       p.proparallel AS parallel, obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname IN ('groma_chat', 'groma_caption', 'groma_ground', 'groma_describe', 'groma_regions', 'groma_proposals',
                    'groma_caption_many', 'groma_chat_many', 'groma_ground_many', 'groma_regions_many')
ORDER BY p.proname, p.oid::regprocedure::text COLLATE "C";

-- Array calls take at most 100000 elements, NULLs included (more failed with an internal out-of-memory error).
SELECT groma_caption_many(array_fill(NULL::bytea, ARRAY[100001]));
SELECT count(*) FROM groma_regions_many(array_fill(NULL::bytea, ARRAY[100001]));
SELECT cardinality(groma_caption_many(array_fill(NULL::bytea, ARRAY[100000]))) AS all_null_accepted;
