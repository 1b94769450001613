-- Every bad input gives a clear ERROR with a specific SQLSTATE, never a
-- crash or a hang, and the session keeps working afterwards.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS groma;
RESET client_min_messages;
\getenv abs_srcdir PG_ABS_SRCDIR
CREATE TABLE bad (name text PRIMARY KEY, data bytea);
\set b64 `base64 -w0 :'abs_srcdir'/test/golden/images/extreme_ironing.jpg`
INSERT INTO bad VALUES ('good', decode(:'b64', 'base64'));
INSERT INTO bad SELECT 'cut_10', substring(data FROM 1 FOR length(data) * 10 / 100) FROM bad WHERE name = 'good';
INSERT INTO bad SELECT 'cut_50', substring(data FROM 1 FOR length(data) * 50 / 100) FROM bad WHERE name = 'good';
INSERT INTO bad SELECT 'cut_99', substring(data FROM 1 FOR length(data) * 99 / 100) FROM bad WHERE name = 'good';
INSERT INTO bad VALUES ('empty', ''::bytea), ('1_byte', '\xff'::bytea),
    ('2_bytes', '\xffd8'::bytea), ('3_bytes', '\xffd8ff'::bytea), ('text', 'abc'::bytea);
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/huge_65500.jpg`
INSERT INTO bad VALUES ('huge_65500x65500', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/zero_height.jpg`
INSERT INTO bad VALUES ('zero_height', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/not_jpeg.png`
INSERT INTO bad VALUES ('png', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/not_jpeg.gif`
INSERT INTO bad VALUES ('gif', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/random_ffd8.bin`
INSERT INTO bad VALUES ('random_ffd8', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/twelve_bit.jpg`
INSERT INTO bad VALUES ('12_bit', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/many_scans.jpg`
INSERT INTO bad VALUES ('3000_scans', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/cmyk.jpg`
INSERT INTO bad VALUES ('cmyk', decode(:'b64', 'base64'));

-- The errors as a user sees them.
SELECT groma_image_validate(data) FROM bad WHERE name = 'empty';
SELECT groma_image_validate(data) FROM bad WHERE name = '1_byte';
SELECT groma_image_validate(data) FROM bad WHERE name = '3_bytes';
SELECT groma_image_validate(data) FROM bad WHERE name = 'cut_10';
SELECT groma_image_validate(data) FROM bad WHERE name = 'cut_50';
SELECT groma_image_validate(data) FROM bad WHERE name = 'cut_99';
SELECT groma_image_validate(data) FROM bad WHERE name = 'huge_65500x65500';
SELECT groma_image_validate(data) FROM bad WHERE name = 'zero_height';
SELECT groma_image_validate(data) FROM bad WHERE name = 'png';
SELECT groma_image_validate(data) FROM bad WHERE name = 'gif';
SELECT groma_image_validate(data) FROM bad WHERE name = 'random_ffd8';
SELECT groma_image_validate(data) FROM bad WHERE name = '12_bit';
SELECT groma_image_validate(data) FROM bad WHERE name = '3000_scans';
SELECT groma_image_info(data) FROM bad WHERE name = 'huge_65500x65500';
SELECT groma_image_info(data) FROM bad WHERE name = '2_bytes';

-- SQLSTATE of both functions for every input ('ok' where the call succeeds).
CREATE FUNCTION sqlstate_of(fn text, img bytea) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF fn = 'info' THEN PERFORM groma_image_info(img); ELSE PERFORM groma_image_validate(img); END IF;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
SELECT name, length(data) AS bytes, sqlstate_of('info', data) AS info, sqlstate_of('validate', data) AS validate
FROM bad ORDER BY name;

-- The session still works, and still decodes good images.
SELECT 1 AS still_alive;
SELECT groma_image_validate(data) FROM bad WHERE name = 'good';

-- Every cut of the first 2000 bytes and 200 evenly spaced cuts of the rest fail cleanly.
SELECT count(*) AS cuts, count(*) FILTER (WHERE s = '22P03') AS invalid_binary_representation
FROM bad b, generate_series(0, length(b.data) - 1) n,
     LATERAL (SELECT sqlstate_of('validate', substring(b.data FROM 1 FOR n)) AS s) x
WHERE b.name = 'good' AND (n < 2000 OR n % (length(b.data) / 200) = 0);
