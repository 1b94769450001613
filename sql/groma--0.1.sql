-- groma 0.1: types of the SQL surface and the image functions that exist so far.
\echo Use "CREATE EXTENSION groma" to load this file. \quit

-- A phrase of a generated text and the boxes it is grounded to.
-- start/stop are character offsets of the phrase inside the answer text.
CREATE TYPE groma_grounding AS (
    phrase  text,
    start   int,
    stop    int,
    boxes   box[]
);

-- A generated answer: plain text plus its groundings.
CREATE TYPE groma_answer AS (
    text        text,
    groundings  groma_grounding[]
);

-- One detected region: its rank, pixel box, score and embedding.
CREATE TYPE groma_region AS (
    idx        int,
    area       box,
    score      real,
    embedding  real[]
);

-- Header facts of a JPEG image, read without decoding it.
CREATE FUNCTION groma_image_info(img bytea,
    OUT width int, OUT height int, OUT components int,
    OUT colorspace text, OUT progressive bool)
RETURNS record
AS 'MODULE_PATHNAME', 'groma_image_info'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_image_info(bytea) IS
'width, height, components, colorspace and progressive flag of a JPEG, from its header alone';

-- True when the image decodes fully and preprocesses; raises the decoding error otherwise.
CREATE FUNCTION groma_image_validate(img bytea)
RETURNS bool
AS 'MODULE_PATHNAME', 'groma_image_validate'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_image_validate(bytea) IS
'decodes and preprocesses a JPEG exactly as the model will; true, or an error saying why not';
