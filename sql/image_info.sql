-- groma_image_info / groma_image_validate on good images, the composite
-- types, and the groma.max_image_pixels setting.
CREATE EXTENSION groma;
\getenv abs_srcdir PG_ABS_SRCDIR
CREATE TABLE imgs (name text PRIMARY KEY, data bytea);
\set b64 `base64 -w0 :'abs_srcdir'/test/golden/images/extreme_ironing.jpg`
INSERT INTO imgs VALUES ('extreme_ironing', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/golden/images/waterview.jpg`
INSERT INTO imgs VALUES ('waterview', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/golden/images/synthetic_333x251.jpg`
INSERT INTO imgs VALUES ('synthetic', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/variant_gray.jpg`
INSERT INTO imgs VALUES ('gray', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/variant_444.jpg`
INSERT INTO imgs VALUES ('444', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/variant_422.jpg`
INSERT INTO imgs VALUES ('422', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/variant_odd_37x23.jpg`
INSERT INTO imgs VALUES ('odd', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/variant_rgb_colorspace.jpg`
INSERT INTO imgs VALUES ('rgb', decode(:'b64', 'base64'));
\set b64 `base64 -w0 :'abs_srcdir'/test/fixtures/cmyk.jpg`
INSERT INTO imgs VALUES ('cmyk', decode(:'b64', 'base64'));

-- Header facts, read without decoding.
SELECT name, length(data) > 0 AS has_bytes, i.*
FROM imgs, groma_image_info(data) i
ORDER BY name;

-- Full decode + preprocess succeeds on every supported image.
SELECT name, groma_image_validate(data) FROM imgs WHERE name <> 'cmyk' ORDER BY name;

-- CMYK headers are readable, but decoding refuses them.
SELECT groma_image_validate(data) FROM imgs WHERE name = 'cmyk';

-- STRICT: NULL in, NULL out.
SELECT groma_image_info(NULL) IS NULL AS info_null, groma_image_validate(NULL) IS NULL AS validate_null;

-- Usable as a CHECK constraint that keeps undecodable images out of a table.
CREATE TABLE photos (id int PRIMARY KEY, img bytea NOT NULL CHECK (groma_image_validate(img)));
INSERT INTO photos SELECT 1, data FROM imgs WHERE name = 'synthetic';
INSERT INTO photos VALUES (2, '\x89504e470d0a1a0a0000'::bytea);
SELECT id, (groma_image_info(img)).width FROM photos;

-- The pixel limit: default, lowered (superuser setting), enforced on both functions, reset.
SHOW groma.max_image_pixels;
SET groma.max_image_pixels = 200000;
SELECT groma_image_validate(data) FROM imgs WHERE name = 'waterview';
SELECT (groma_image_info(data)).width FROM imgs WHERE name = 'waterview';
SELECT groma_image_validate(data) FROM imgs WHERE name = 'extreme_ironing';
SET groma.max_image_pixels = 0;
RESET groma.max_image_pixels;
SELECT groma_image_validate(data) FROM imgs WHERE name = 'waterview';
SET groma.no_such_setting = 1;

-- The result types of the SQL surface exist with their documented fields.
SELECT ('the man', 0, 7, ARRAY[box '((1,2),(3,4))'])::groma_grounding AS grounding;
SELECT ('A man irons.', ARRAY[('A man', 0, 5, ARRAY[box '((1,2),(3,4))'])::groma_grounding])::groma_answer AS answer;
SELECT (0, box '((10,20),(30,40))', 0.5, ARRAY[0.25, -1]::real[])::groma_region AS region;

-- A plain role can call the functions but cannot change the pixel limit.
CREATE ROLE groma_plain_user;
GRANT SELECT ON imgs TO groma_plain_user;
SET ROLE groma_plain_user;
SELECT groma_image_validate(data) FROM imgs WHERE name = 'odd';
SET groma.max_image_pixels = 1;
RESET ROLE;
REVOKE SELECT ON imgs FROM groma_plain_user;
DROP ROLE groma_plain_user;
