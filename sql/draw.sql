-- groma_draw on a cluster with groma preloaded and no model: drawing needs
-- only groma-server's decoder and encoder.  Pixels are checked by the unit
-- tests (test_draw.c); here: the SQL surface, sizes and refusals.
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

-- a JPEG of the same size, different from the input; labels optional
SELECT i.width, i.height, i.components, d <> data AS changed
FROM img, groma_draw(data, ARRAY[box '((10,10),(120,90))', box '((200,100),(330,250))'], ARRAY['man', NULL]) d,
     groma_image_info(d) i;
SELECT (groma_image_info(groma_draw(data, ARRAY[box '((10,10),(120,90))']))).width FROM img;
SELECT (groma_image_info(groma_draw(data, '{}'::box[]))).height AS no_boxes FROM img;
-- a box reaching outside the image is clipped, not refused
SELECT (groma_image_info(groma_draw(data, ARRAY[box '((-50,-50),(1000,1000))']))).width AS clipped FROM img;

-- NULL in, NULL out
SELECT groma_draw(NULL, ARRAY[box '((1,1),(2,2))']) IS NULL AS null_img,
       groma_draw(data, NULL) IS NULL AS null_boxes FROM img;

-- refusals, each with its own SQLSTATE; the session keeps working
\set VERBOSITY sqlstate
SELECT groma_draw(data, ARRAY[box '((1,1),(2,2))'], ARRAY['a', 'b']) FROM img;
SELECT groma_draw(data, ARRAY[NULL::box]) FROM img;
SELECT groma_draw(data, ARRAY[box '((1,1),(NaN,2))']) FROM img;
SELECT groma_draw(data, (SELECT array_agg(box '((1,1),(2,2))') FROM generate_series(1, 1001))) FROM img;
SELECT groma_draw('\xffd8ffe000104a46494600'::bytea, ARRAY[box '((1,1),(2,2))']);
SELECT groma_draw('\x89504e470d0a1a0a'::bytea, ARRAY[box '((1,1),(2,2))']);
\set VERBOSITY default
-- over 1000 boxes: the backend's limit is groma-server's
SELECT groma_draw(data, (SELECT array_agg(box '((1,1),(2,2))') FROM generate_series(1, 2000))) FROM img;
SELECT 1 AS still_alive;
