-- groma 0.1: types of the SQL surface, the image functions, groma-server's status and the model functions.
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

-- One detected region: its rank (1 = best score), pixel box, score and
-- embedding (the region encoder's feature before the up-projection into the
-- language model: 1024 values for the real model).
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
-- The header is read in the backend, the decoding runs in groma-server (no
-- model needed), so this needs shared_preload_libraries = 'groma'.
CREATE FUNCTION groma_image_validate(img bytea)
RETURNS bool
AS 'MODULE_PATHNAME', 'groma_image_validate'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_image_validate(bytea) IS
'decodes and preprocesses a JPEG exactly as the model will (in groma-server); true, or an error saying why not';

-- Round trip of a PING to groma-server, in milliseconds.  Answered while
-- the model loads and without a model.
CREATE FUNCTION groma_ping()
RETURNS double precision
AS 'MODULE_PATHNAME', 'groma_ping'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION groma_ping() IS
'round trip of a PING to groma-server in milliseconds';

-- One row per groma-server (one per entry of groma.devices, or one).
--   server         slot number, 0 up
--   state          the server's own state when it answers (starting, loading,
--                  ready, no_model, failed, stopping), else the launcher's
--                  (stopped, starting, running, backoff)
--   pid            its process id, NULL when it is not running
--   device         the device it runs on ("cpu", "cuda:0", ...)
--   model_path     the model directory it was started with ('' = none)
--   started_at     when the launcher last started it
--   restarts       starts after the first (crashes and configuration changes)
--   last_exit      how the previous process ended: 'exit N' or 'signal N (name)'
--   last_stderr    the last line it wrote to stderr (why a load failed, ...)
--   queue_depth, running, served, failed
--                  requests waiting, being computed, answered, failed (from
--                  the server itself; NULL when it does not answer)
--   load_progress  'loaded/total MB' of the model's weights, NULL when unknown
--   in_flight      requests sessions have sent to it and not yet read back
--   batch, max_batch
--                  answers being decoded together now, and the most it will
--                  (groma.max_batch)
--   kv_cache       'used/total MB' of its KV cache pool (groma.kv_cache_mb)
--   weights        the type its model's matrices are kept in (f32, bf16, f16,
--                  int8; the KV cache holds bf16 for int8, else the same type);
--                  NULL without a model or when it does not answer
--   cancelled      requests ended by a cancel (a statement cancelled or timed
--                  out, a session gone); not in failed
--   busy           requests refused because its queue was full (an array
--                  call sends those again); not in failed
CREATE FUNCTION groma_status()
RETURNS TABLE (server int, state text, pid int, device text, model_path text,
               started_at timestamptz, restarts int, last_exit text, last_stderr text,
               queue_depth int, running int, served bigint, failed bigint,
               load_progress text, in_flight int, batch int, max_batch int, kv_cache text,
               weights text, cancelled bigint, busy bigint, model_call_s float8)
AS 'MODULE_PATHNAME', 'groma_server_status'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION groma_status() IS
'state, process, model, exits and request counters of each groma-server';

-- The model's grounded answer to a free prompt about an image.  refer boxes
-- (pixels of the image) are the regions the prompt names as <refer_box>, in
-- order.  NULL when img or prompt is NULL.  Generation is greedy and stops
-- after groma.max_new_tokens tokens.
--
-- IMMUTABLE: for a fixed model the answer depends on the arguments alone
-- (greedy decoding), which lets Citus push it down to shards and lets it
-- appear in generated columns and indexes.  Pointing groma.model_path at a
-- different model changes the answers, so results stored from the old model
-- (columns, indexes, materialised views) are stale afterwards and should be
-- recomputed, as after changing any IMMUTABLE function.
CREATE FUNCTION groma_chat(img bytea, prompt text, refer box[] DEFAULT NULL)
RETURNS groma_answer
AS 'MODULE_PATHNAME', 'groma_chat'
LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;

-- The functions below are STRICT (NULL in, NULL out) and IMMUTABLE for the
-- reason given at groma_chat: for a fixed model their results depend on the
-- arguments alone; after groma.model_path changes, stored results are stale.
-- Every box they return lies inside the image (0..width, 0..height): the
-- model's own boxes may reach outside it and are clipped.  Boxes are in
-- pixels of the original image; PostgreSQL's box prints its corners as
-- (high),(low), i.e. (x2,y2),(x1,y1).

-- The model's grounded caption of an image (the original's prompt for a
-- brief caption, or groma's own prompt for a detailed one).
CREATE FUNCTION groma_caption(img bytea, detailed bool DEFAULT false)
RETURNS groma_answer
AS 'MODULE_PATHNAME', 'groma_caption'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_caption(bytea, bool) IS
'grounded caption (text and phrase-to-box groundings) of a JPEG image, brief or detailed';

-- The boxes the model grounds a phrase to (referring expression): the boxes
-- of the answer's groundings in order, each box once; empty when none.
CREATE FUNCTION groma_ground(img bytea, phrase text)
RETURNS box[]
AS 'MODULE_PATHNAME', 'groma_ground'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_ground(bytea, text) IS
'boxes (pixels, clipped to the image) the model finds for a phrase in a JPEG image; possibly empty';

-- The model's description of one box of the image (pixels, inside the image).
CREATE FUNCTION groma_describe(img bytea, area box)
RETURNS text
AS 'MODULE_PATHNAME', 'groma_describe'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_describe(bytea, box) IS
'the model''s description of a box (pixels, inside the image) of a JPEG image';

-- The regions the model keeps, best score first: at most max_regions (1 up
-- to the model's limit, 100 for Groma), scores strictly above min_score
-- (0..1).  idx counts from 1, so (groma_proposals(img))[idx] is the same box.
CREATE FUNCTION groma_regions(img bytea, max_regions int DEFAULT 100, min_score real DEFAULT 0.15)
RETURNS SETOF groma_region
AS 'MODULE_PATHNAME', 'groma_regions'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE ROWS 100;

COMMENT ON FUNCTION groma_regions(bytea, int, real) IS
'regions the model keeps in a JPEG image (idx, box, score, embedding), best score first';

-- The regions of an array of images, ord giving each row's image (its
-- subscript in imgs); groma.bulk_in_flight requests in flight at
-- once, so groma-server runs their vision stages as batches.
CREATE FUNCTION groma_regions_many(imgs bytea[], max_regions int DEFAULT 100, min_score real DEFAULT 0.15)
RETURNS TABLE (ord int, idx int, area box, score real, embedding real[])
AS 'MODULE_PATHNAME', 'groma_regions_array'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE ROWS 1000;

COMMENT ON FUNCTION groma_regions_many(bytea[], int, real) IS
'regions the model keeps in each JPEG image of an array (ord, idx, box, score, embedding), several requests in flight at once';

-- The boxes of groma_regions, as an array in the same order.
CREATE FUNCTION groma_proposals(img bytea, max_regions int DEFAULT 100, min_score real DEFAULT 0.15)
RETURNS box[]
AS 'MODULE_PATHNAME', 'groma_proposals'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_proposals(bytea, int, real) IS
'boxes of the regions the model keeps in a JPEG image, best score first';

COMMENT ON FUNCTION groma_chat(bytea, text, box[]) IS
'grounded answer (text and phrase-to-box groundings) of the model to a prompt about a JPEG image';

-- The grounded captions of an array of images, in the same order (NULL for a
-- NULL element): the set-based path.  The requests travel on
-- groma.bulk_in_flight connections at once, so several wait in groma-server's
-- queue instead of one at a time.
CREATE FUNCTION groma_caption_many(imgs bytea[], detailed bool DEFAULT false)
RETURNS groma_answer[]
AS 'MODULE_PATHNAME', 'groma_caption_array'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_caption_many(bytea[], bool) IS
'grounded captions of an array of JPEG images, in order, several requests in flight at once';

-- groma_caption_table's call for one chunk: groma_caption_many(bytea[]), except
-- that an image the model cannot take (damaged, unsupported, over a JPEG
-- limit), or whose caption the database's encoding cannot hold, gets a NULL
-- answer and its reason in failures (same subscript) instead of failing the
-- whole call, so the other rows' answers are kept.  With alone, each image
-- runs in model calls of its own on groma-server (no other request, of any
-- session, batched with it), so that a server lost there was lost on it.
CREATE FUNCTION groma_caption_chunk(imgs bytea[], detailed bool, alone bool DEFAULT false,
                                    OUT answers groma_answer[], OUT failures text[])
AS 'MODULE_PATHNAME', 'groma_caption_chunk'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION groma_caption_chunk(bytea[], bool, bool) IS
'internal: groma_caption_table''s captions of one chunk, with a reason in place of each image that failed';

-- After groma_caption_chunk failed (58000: its server was lost): the
-- subscripts (from 1) of its images that were answered before, whose
-- answers the error threw away; NULL when the last call did not fail.
CREATE FUNCTION groma_caption_chunk_answered() RETURNS int[]
AS 'MODULE_PATHNAME', 'groma_caption_chunk_answered'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION groma_caption_chunk_answered() IS
'internal: which images of the last failed groma_caption_chunk were answered before it failed';

-- The model's grounded answers to one prompt about each image of an array,
-- in the same order (NULL for a NULL element), requests in flight as for
-- groma_caption_many(bytea[]).
CREATE FUNCTION groma_chat_many(imgs bytea[], prompt text)
RETURNS groma_answer[]
AS 'MODULE_PATHNAME', 'groma_chat_array'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_chat_many(bytea[], text) IS
'grounded answers of the model to one prompt about each JPEG image of an array, in order, several requests in flight at once';

-- The boxes the model grounds a phrase to in each image of an array, as
-- groma_ground: one row per element, ord its subscript in imgs, boxes NULL
-- for a NULL element; requests in flight as for groma_caption_many(bytea[]).
CREATE FUNCTION groma_ground_many(imgs bytea[], phrase text)
RETURNS TABLE (ord int, boxes box[])
AS 'MODULE_PATHNAME', 'groma_ground_array'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE ROWS 100;

COMMENT ON FUNCTION groma_ground_many(bytea[], text) IS
'boxes the model finds for a phrase in each JPEG image of an array (ord, boxes), several requests in flight at once';

-- groma_caption_table's checks of its arguments (a table, not a view; an
-- image column of bytea; a caption column of groma_answer or text, or a
-- domain over one; chunk 1 to 100000; detailed not NULL; chunk_mb 1 to
-- 512), before any model work; returns the SQL of the value stored from an
-- answer a.answer.
CREATE FUNCTION groma_caption_table_value(tbl regclass, img_column name, caption_column name, chunk int,
                                          detailed bool, chunk_mb int)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    kind "char";
    img_type regtype;
    col_type regtype;
BEGIN
    IF tbl IS NULL OR img_column IS NULL OR caption_column IS NULL THEN
        RAISE EXCEPTION 'groma_caption_table: the table and both column names must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF chunk IS NULL OR chunk < 1 THEN
        RAISE EXCEPTION 'chunk must be at least 1, not %', coalesce(chunk::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- a chunk is one array call, which takes at most 100000 images
    IF chunk > 100000 THEN
        RAISE EXCEPTION 'chunk must be at most 100000, not %', chunk
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A chunk is captioned by one array call, which takes at most 100000 images.';
    END IF;
    IF detailed IS NULL THEN
        RAISE EXCEPTION 'detailed must be true or false, not NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- a chunk's images travel in one bytea[], which PostgreSQL caps at 1 GB
    IF chunk_mb IS NULL OR chunk_mb < 1 OR chunk_mb > 512 THEN
        RAISE EXCEPTION 'chunk_mb must be between 1 and 512, not %', coalesce(chunk_mb::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A chunk''s images are passed in one array, which PostgreSQL caps at 1 GB.';
    END IF;
    SELECT relkind INTO kind FROM pg_class WHERE oid = tbl;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'groma_caption_table: there is no relation with OID %', tbl::oid
            USING ERRCODE = 'undefined_table';
    END IF;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'groma_caption_table: % is not a table (it is a %)', tbl,
            CASE kind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'
                      ELSE 'relation of kind ' || kind::text END
            USING ERRCODE = 'wrong_object_type', HINT = 'Caption it with UPDATE ... SET col = groma_caption(img).';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = tbl AND ev_type = '2') THEN
        RAISE EXCEPTION 'groma_caption_table: % has rules on UPDATE', tbl
            USING ERRCODE = 'feature_not_supported', HINT = 'Caption it with UPDATE ... SET col = groma_caption(img).';
    END IF;
    IF img_column = caption_column THEN
        RAISE EXCEPTION 'groma_caption_table: the image and the caption column are both "%"', img_column
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = caption_column AND attgenerated <> '') THEN
        RAISE EXCEPTION 'groma_caption_table: column "%" of % is a generated column', caption_column, tbl
            USING ERRCODE = 'wrong_object_type';
    END IF;
    img_type := @extschema@.groma_column_base_type(tbl, img_column);
    IF img_type IS DISTINCT FROM 'bytea'::regtype THEN
        RAISE EXCEPTION 'column "%" of % is of type %, not bytea', img_column, tbl, img_type
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    col_type := @extschema@.groma_column_base_type(tbl, caption_column);
    -- said before any model work (a distributed table's shard jobs would each fail on it otherwise)
    IF NOT has_table_privilege(tbl, 'SELECT') OR NOT has_column_privilege(tbl, caption_column, 'UPDATE') THEN
        RAISE EXCEPTION 'permission denied for table %', tbl
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('groma_caption_table needs SELECT on %s and UPDATE on its column %I.', tbl,
                                  caption_column);
    END IF;
    IF col_type = '@extschema@.groma_answer'::regtype THEN
        RETURN 'a.answer';
    ELSIF col_type = 'text'::regtype THEN
        RETURN '(a.answer).text';
    END IF;
    RAISE EXCEPTION 'column "%" of % is of type %, not groma_answer or text', caption_column, tbl, col_type
        USING ERRCODE = 'datatype_mismatch';
END
$fn$;

COMMENT ON FUNCTION groma_caption_table_value(regclass, name, name, int, bool, int) IS
'internal: groma_caption_table''s argument checks';

-- The type of column col of tbl, through any domains to their base type;
-- an error when there is no such column.
CREATE FUNCTION groma_column_base_type(tbl regclass, col name)
RETURNS regtype
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    typ oid;
    base oid;
BEGIN
    SELECT atttypid INTO typ FROM pg_attribute WHERE attrelid = tbl AND attname = col AND attnum > 0
        AND NOT attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of % does not exist', col, tbl USING ERRCODE = 'undefined_column';
    END IF;
    LOOP
        SELECT NULLIF(typbasetype, 0) INTO base FROM pg_type WHERE oid = typ AND typtype = 'd';
        EXIT WHEN base IS NULL;
        typ := base;
    END LOOP;
    RETURN typ::regtype;
END
$fn$;

COMMENT ON FUNCTION groma_column_base_type(regclass, name) IS
'internal: a column''s type through its domains';

-- groma_caption_table's SQL for a row's identity while it runs, over the
-- table as t: with a primary key, its columns as one row's text (a row
-- keeps it when it moves, as in a VACUUM FULL or an update); without one,
-- the row's ctid and the SHA-256 of its image (a ctid alone could name
-- another row after a VACUUM FULL or pruning; two rows with the same image
-- can still be told apart only by where they are).
CREATE FUNCTION groma_caption_table_key(tbl regclass, img_column name)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    columns text;
BEGIN
    SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY k.ord) INTO columns
    FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = tbl AND i.indisprimary AND k.ord <= i.indnkeyatts;  -- (not its INCLUDE columns)
    IF columns IS NOT NULL THEN
        RETURN format('ROW(%s)::pg_catalog.text', columns);
    END IF;
    RETURN format('(t.ctid::pg_catalog.text OPERATOR(pg_catalog.||) '' '' OPERATOR(pg_catalog.||) '
                  'pg_catalog.encode(pg_catalog.sha256(t.%I::pg_catalog.bytea), ''hex''))', img_column);
END
$fn$;

COMMENT ON FUNCTION groma_caption_table_key(regclass, name) IS
'internal: how groma_caption_table tells the rows of a table apart';

-- Captions the rows of tbl whose caption_column IS NULL (and img_column is
-- not), chunk rows per transaction, and at most chunk_mb MB of images (a
-- chunk's first image alone may be larger): each chunk is one array call
-- (groma_caption_chunk: groma_caption_many(bytea[]) keeping the other rows'
-- answers when an image fails) and one UPDATE, committed before the next, with a NOTICE of the
-- progress.  Cancelled or failed, it keeps the committed chunks; calling it
-- again captions only the rows still NULL.  caption_column is groma_answer
-- or text (then the answer's text is stored).  Call it outside a
-- transaction block (CALL groma_caption_table(...)), as COMMIT needs.
-- Each row NULL when it begins runs the model at most once: a row whose
-- image fails, or that its UPDATE left NULL (a trigger skipped or undid
-- it), is remembered (groma_caption_table_key) and not taken again.
-- On a Citus hash-distributed table it runs on the workers instead: one
-- job per shard, all at once, each the same chunked loop on its shard with
-- its node's groma-server (groma_caption_shards).
CREATE PROCEDURE groma_caption_table(tbl regclass, img_column name, caption_column name,
                                     chunk int DEFAULT 16, detailed bool DEFAULT false, chunk_mb int DEFAULT 256)
LANGUAGE plpgsql
AS $proc$
-- Every function and operator below is schema-qualified: the procedure keeps the caller's search_path (the
-- table's triggers run under it, as for the caller's own UPDATE), and no function of another role on that
-- path, however exactly its argument types match, is called in place of the built-ins or of groma's own.
DECLARE
    -- (types by schema too: the caller's search_path may put a schema before pg_catalog)
    value_sql pg_catalog.text;
    total bigint;
    done bigint := 0;
    attempted bigint := 0;
    n bigint;
    ids pg_catalog.tid[];
    row_ids pg_catalog.tid[];
    answers @extschema@.groma_answer[];
    failures pg_catalog.text[];
    k int;
    -- a row's identity (groma_caption_table_key), and whether it is its primary key
    key_sql pg_catalog.text;
    by_primary_key bool;
    row_keys pg_catalog.text[];
    -- the rows remembered, by key: those whose image failed, and those the UPDATE left NULL; with where each
    -- was (without a primary key the key is only computed at those ctids)
    failed_keys pg_catalog.text[] := '{}';
    unkept_keys pg_catalog.text[] := '{}';
    remembered_at pg_catalog.tid[] := '{}';
    skip_test pg_catalog.text;
    -- one chunk's UPDATE: the rows it wrote (their ctids before and after), where each row should be after
    -- the table's triggers and with which key, what is there, and the rows a trigger moved meanwhile
    updated_ids pg_catalog.tid[];
    new_ids pg_catalog.tid[];
    at_ids pg_catalog.tid[];
    expected_keys pg_catalog.text[];
    seen bigint;
    kept bigint;
    seen_keys pg_catalog.text[];
    more_keys pg_catalog.text[];
    more_ids pg_catalog.tid[];
    missing_keys pg_catalog.text[];
    missing bigint;
    lost bigint := 0;
    remaining bigint;
    -- a chunk whose groma-server was lost (58000): the message, each row's answer captioned alone, the rows in a
    -- row whose own call failed so, and whether an image captioned before was answered
    lost_message pg_catalog.text;
    one_answer @extschema@.groma_answer[];
    one_failure pg_catalog.text[];
    answered_alone pg_catalog.tid;
    written_at pg_catalog.tid;
    -- of such a chunk's rows (subscripts of row_ids): those answered before the loss (NULL: not known), those
    -- captioned alone, the others (answered before) sent again together, and their answers
    answered_before int[];
    alone_at int[];
    together_at int[];
    together_answers @extschema@.groma_answer[];
    together_failures pg_catalog.text[];
    j int;
    failed_in_a_row int := 0;
    control_answered bool;
BEGIN
    -- outside a transaction block only (it commits): said before any model work
    COMMIT;
    value_sql := @extschema@.groma_caption_table_value(tbl, img_column, caption_column, chunk, detailed, chunk_mb);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhparent OPERATOR(pg_catalog.=) tbl) THEN
        RAISE EXCEPTION 'groma_caption_table: % has partitions or child tables, whose rows it cannot tell apart', tbl
            USING ERRCODE = 'feature_not_supported', HINT = 'CALL it on each partition (or child table) instead.';
    END IF;
    IF @extschema@.groma_citus_distribution(tbl) IS NOT NULL THEN
        PERFORM @extschema@.groma_caption_shards(tbl, img_column, caption_column, chunk, detailed, chunk_mb);
        RETURN;
    END IF;
    key_sql := @extschema@.groma_caption_table_key(tbl, img_column);
    by_primary_key := pg_catalog.starts_with(key_sql, 'ROW(');
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM ONLY %s WHERE %I IS NULL AND %I IS NOT NULL', tbl,
                              caption_column, img_column) INTO total;
    PERFORM @extschema@.groma_progress_begin(tbl, total);
    -- true for a remembered row of tbl (as t): its key among $1; without a primary key, only looked at where a
    -- remembered row was ($2)
    IF by_primary_key THEN
        skip_test := pg_catalog.format('(%s) OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])', key_sql);
    ELSE
        skip_test := pg_catalog.format(
            'CASE WHEN t.ctid OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.tid[])
                  THEN (%s) OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]) ELSE false END', key_sql);
    END IF;
    LOOP
        -- the chunk's rows, locked until the COMMIT below; the lock this takes on the table also holds off an
        -- ALTER TABLE until then.  Until a row is remembered, no row's key is computed to test it.  Of the rows
        -- locked, those taken are the first whose images add up to at most chunk_mb MB (the first one always:
        -- octet_length reads a stored image's size without fetching it); the others wait for the next chunk
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.array_agg(s.ctid) FROM
                (SELECT l.ctid, l.bytes, pg_catalog.sum(l.bytes) OVER (ROWS UNBOUNDED PRECEDING) AS upto
                 FROM (SELECT t.ctid, pg_catalog.octet_length(t.%2$I::pg_catalog.bytea) AS bytes
                       FROM ONLY %1$s t WHERE %3$I IS NULL AND %2$I IS NOT NULL
                       AND NOT %5$s LIMIT %4$s FOR UPDATE OF t SKIP LOCKED) l) s
             WHERE s.upto OPERATOR(pg_catalog.<=) $3 OR s.upto OPERATOR(pg_catalog.=) s.bytes',
            tbl, img_column, caption_column, LEAST(chunk, total OPERATOR(pg_catalog.-) attempted),
            CASE WHEN pg_catalog.cardinality(remembered_at) OPERATOR(pg_catalog.=) 0 THEN 'false' ELSE skip_test END)
            INTO ids USING failed_keys OPERATOR(pg_catalog.||) unkept_keys, remembered_at,
                           chunk_mb::pg_catalog.int8 OPERATOR(pg_catalog.*) 1048576;
        EXIT WHEN ids IS NULL;
        -- the columns checked again under that lock: one changed since the last chunk (its type altered, or
        -- dropped) would otherwise get a caption of another type, converted to text on assignment
        value_sql := @extschema@.groma_caption_table_value(tbl, img_column, caption_column, chunk, detailed, chunk_mb);
        -- the model's answers first, on their own (an error of the UPDATE below, a trigger's, is not an image's):
        -- an image the model cannot take, or whose caption the database's encoding cannot hold, gets a NULL
        -- answer and its reason in failures; a groma-server restarting or loading is waited for (up to 5
        -- minutes); a groma-server lost under the chunk is dealt with below; any other error (a limit every row
        -- would meet, a cancel) ends the call
        BEGIN
            EXECUTE pg_catalog.format(
                'SELECT s.row_ids, s.row_keys, c.answers, c.failures
                 FROM (SELECT pg_catalog.array_agg(t.ctid ORDER BY t.ctid) AS row_ids,
                              pg_catalog.array_agg(%3$s ORDER BY t.ctid) AS row_keys,
                              pg_catalog.array_agg(t.%2$I::pg_catalog.bytea ORDER BY t.ctid) AS imgs
                       FROM ONLY %1$s t WHERE t.ctid OPERATOR(pg_catalog.=) ANY ($1)) s,
                      @extschema@.groma_caption_chunk(s.imgs, $2) c',
                tbl, img_column, key_sql) INTO row_ids, row_keys, answers, failures USING ids, detailed;
            failed_in_a_row := 0;
        EXCEPTION WHEN SQLSTATE '58000' THEN
            -- groma-server was lost (it crashed, exited, or its watchdog ended it), or failed on the GPU, while it
            -- had some of the chunk's requests in its model call: one image may be the cause, and the next call
            -- would take the same chunk first.  (Requests of the chunk that were only queued there were sent again
            -- by groma_caption_chunk, when none was in that call.)  Each row not answered before the loss is
            -- captioned again alone (once the server is back), in model calls of its own, also the row of a chunk
            -- of one (other sessions' requests may have shared its call); a row whose own call fails so again is
            -- left NULL like an image the model cannot take.  The rows answered before (their answers were thrown
            -- away with the error) did not end the server: they are sent again together first, and captioned
            -- alone too should the server be lost again
            GET STACKED DIAGNOSTICS lost_message = MESSAGE_TEXT;
            answered_before := @extschema@.groma_caption_chunk_answered();
            -- (in the order the chunk's images were sent: answered_before holds subscripts of that array)
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.array_agg(t.ctid ORDER BY t.ctid), pg_catalog.array_agg(%2$s ORDER BY t.ctid)
                 FROM ONLY %1$s t WHERE t.ctid OPERATOR(pg_catalog.=) ANY ($1)', tbl, key_sql)
                INTO row_ids, row_keys USING ids;
            n := COALESCE(pg_catalog.cardinality(row_ids), 0);
            SELECT COALESCE(pg_catalog.array_agg(p.pos ORDER BY p.pos) FILTER (WHERE p.suspect), '{}'),
                   COALESCE(pg_catalog.array_agg(p.pos ORDER BY p.pos) FILTER (WHERE NOT p.suspect), '{}')
                INTO alone_at, together_at
            FROM (SELECT g.pos, NOT COALESCE(g.pos OPERATOR(pg_catalog.=) ANY (answered_before), false) AS suspect
                  FROM pg_catalog.generate_series(1, n::int) AS g(pos)) p;
            IF pg_catalog.cardinality(together_at) OPERATOR(pg_catalog.=) 0 THEN
                RAISE WARNING 'groma_caption_table: a chunk of % row(s) of % failed: %', pg_catalog.cardinality(ids),
                              tbl, lost_message
                    USING DETAIL = 'Its rows are captioned again one at a time, each in model calls of its own, to '
                                   'find an image that causes it.';
            ELSE
                RAISE WARNING 'groma_caption_table: a chunk of % row(s) of % failed: %', pg_catalog.cardinality(ids),
                              tbl, lost_message
                    USING DETAIL = pg_catalog.format(
                              'Its rows are captioned again one at a time, each in model calls of its own, to find '
                              'an image that causes it, but for the %s of %s answered before: those are sent again '
                              'together.', pg_catalog.cardinality(together_at), n);
            END IF;
            answers := pg_catalog.array_fill(NULL::@extschema@.groma_answer, ARRAY[n::int]);
            failures := pg_catalog.array_fill(NULL::pg_catalog.text, ARRAY[n::int]);
            answered_alone := NULL;
            IF pg_catalog.cardinality(together_at) OPERATOR(pg_catalog.>) 0 THEN
                BEGIN
                    EXECUTE pg_catalog.format(
                        'SELECT c.answers, c.failures FROM @extschema@.groma_caption_chunk(
                             (SELECT pg_catalog.array_agg(t.%2$I::pg_catalog.bytea ORDER BY t.ctid) FROM ONLY %1$s t
                              WHERE t.ctid OPERATOR(pg_catalog.=) ANY ($1)), $2) c', tbl, img_column)
                        INTO together_answers, together_failures
                        USING ARRAY(SELECT row_ids[u.pos] FROM pg_catalog.unnest(together_at) AS u(pos)), detailed;
                    FOR j IN 1 .. pg_catalog.cardinality(together_at) LOOP
                        answers[together_at[j]] := together_answers[j];
                        failures[together_at[j]] := together_failures[j];
                        -- (the server answers: a row answered so is the image to check it against, below)
                        IF together_failures[j] IS NULL THEN
                            failed_in_a_row := 0;
                            answered_alone := COALESCE(answered_alone, row_ids[together_at[j]]);
                        END IF;
                    END LOOP;
                EXCEPTION WHEN SQLSTATE '58000' THEN
                    GET STACKED DIAGNOSTICS lost_message = MESSAGE_TEXT;
                    RAISE WARNING 'groma_caption_table: the % row(s) of % answered before were lost again, sent together: %',
                                  pg_catalog.cardinality(together_at), tbl, lost_message
                        USING DETAIL = 'Every row of the chunk is captioned again one at a time.';
                    alone_at := ARRAY(SELECT pg_catalog.generate_series(1, n::int));
                    answered_alone := NULL;
                END;
            END IF;
            FOREACH k IN ARRAY alone_at LOOP
                BEGIN
                    EXECUTE pg_catalog.format(
                        'SELECT c.answers, c.failures FROM @extschema@.groma_caption_chunk(ARRAY[
                             (SELECT t.%2$I::pg_catalog.bytea FROM ONLY %1$s t
                              WHERE t.ctid OPERATOR(pg_catalog.=) $1)], $2, true) c', tbl, img_column)
                        INTO one_answer, one_failure USING row_ids[k], detailed;
                    failed_in_a_row := 0;
                    IF one_failure[1] IS NULL THEN
                        answered_alone := row_ids[k];
                    END IF;
                EXCEPTION WHEN SQLSTATE '58000' THEN
                    GET STACKED DIAGNOSTICS lost_message = MESSAGE_TEXT;
                    one_answer := '{NULL}';
                    one_failure := ARRAY['captioned alone, it failed again: ' OPERATOR(pg_catalog.||) lost_message];
                    failed_in_a_row := failed_in_a_row OPERATOR(pg_catalog.+) 1;
                END;
                answers[k] := one_answer[1];
                failures[k] := one_failure[1];
                -- two rows in a row failed alone: the server, not the images, may be at fault.  An image answered
                -- before (one of this chunk's, else one this call captioned, else a captioned row's) tells: the
                -- call ends unless it is answered.  Without one the call goes on until 8 rows in a row failed
                IF failed_in_a_row OPERATOR(pg_catalog.>=) 2 THEN
                    BEGIN
                        -- (NULL when there is no such image, or the model cannot take it after all)
                        EXECUTE pg_catalog.format(
                            'SELECT CASE WHEN x.img IS NOT NULL AND c.failures[1] IS NULL THEN c.answers[1] IS NOT NULL END
                             FROM (SELECT COALESCE(
                                       (SELECT t.%2$I::pg_catalog.bytea FROM ONLY %1$s t
                                        WHERE t.ctid OPERATOR(pg_catalog.=) $2),
                                       (SELECT t.%2$I::pg_catalog.bytea FROM ONLY %1$s t
                                        WHERE t.ctid OPERATOR(pg_catalog.=) $3 AND NOT (t.%3$I IS NULL)),
                                       (SELECT t.%2$I::pg_catalog.bytea FROM ONLY %1$s t
                                        WHERE NOT (t.%3$I IS NULL) AND t.%2$I IS NOT NULL LIMIT 1)) AS img) x,
                                  @extschema@.groma_caption_chunk(ARRAY[x.img], $1, true) c',
                            tbl, img_column, caption_column)
                            INTO control_answered USING detailed, answered_alone, written_at;
                    EXCEPTION WHEN SQLSTATE '58000' THEN
                        GET STACKED DIAGNOSTICS lost_message = MESSAGE_TEXT;
                        control_answered := false;
                    END;
                    IF NOT COALESCE(control_answered, failed_in_a_row OPERATOR(pg_catalog.<) 8) THEN
                        RAISE EXCEPTION 'groma_caption_table: groma-server failed on % images of % in a row, each captioned alone, and %',
                                        failed_in_a_row, tbl,
                                        CASE WHEN control_answered IS NULL THEN 'no image was answered before to tell whether it can answer any'
                                             ELSE 'on an image it answered before' END
                            USING ERRCODE = 'system_error',
                                  DETAIL = pg_catalog.format('The last failure: %s', lost_message),
                                  HINT = 'groma-server, not these images, seems at fault: its log (and groma_status()) '
                                         'says more. The chunks committed before are kept; CALL it again once it is mended.';
                    END IF;
                    IF control_answered THEN
                        failed_in_a_row := 0;
                    END IF;
                END IF;
            END LOOP;
        END;
        attempted := attempted OPERATOR(pg_catalog.+) COALESCE(pg_catalog.cardinality(row_ids), 0);
        -- a failed row is remembered and named in a warning; it is left NULL
        FOR k IN 1 .. COALESCE(pg_catalog.cardinality(row_ids), 0) LOOP
            CONTINUE WHEN failures[k] IS NULL;
            failed_keys := pg_catalog.array_append(failed_keys, row_keys[k]);
            remembered_at := pg_catalog.array_append(remembered_at, row_ids[k]);
            RAISE WARNING 'groma_caption_table: the row of % at ctid % is left NULL: %', tbl, row_ids[k], failures[k];
        END LOOP;
        EXECUTE pg_catalog.format(
            'WITH a AS (SELECT $1[k] AS row_id, $2[k] AS answer FROM pg_catalog.generate_subscripts($1, 1) AS k
                        WHERE $3[k] IS NULL),
                  u AS (UPDATE ONLY %1$s t SET %2$I = %3$s FROM a WHERE t.ctid OPERATOR(pg_catalog.=) a.row_id
                        RETURNING a.row_id AS old_id, t.ctid AS new_id)
             SELECT pg_catalog.array_agg(old_id), pg_catalog.array_agg(new_id) FROM u',
            tbl, caption_column, value_sql) INTO updated_ids, new_ids USING row_ids, answers, failures;
        -- (an image this call captioned, should the server's health need telling later)
        written_at := COALESCE(new_ids[1], written_at);
        -- the deferred triggers fire now, not at the COMMIT: what they do to the rows is seen below
        SET CONSTRAINTS ALL IMMEDIATE;
        -- where each row not failed should be now: the new version of an updated row, the same place for one a
        -- trigger skipped; expected_keys: their keys
        SELECT pg_catalog.array_agg(COALESCE(u.new_id, r.row_id)), pg_catalog.array_agg(r.row_key)
            INTO at_ids, expected_keys
        FROM ROWS FROM (pg_catalog.unnest(row_ids), pg_catalog.unnest(row_keys), pg_catalog.unnest(failures))
             AS r(row_id, row_key, failure)
             LEFT JOIN ROWS FROM (pg_catalog.unnest(updated_ids), pg_catalog.unnest(new_ids)) AS u(old_id, new_id)
             ON u.old_id OPERATOR(pg_catalog.=) r.row_id
        WHERE r.failure IS NULL;
        -- n: the rows whose caption is set after every trigger ran; those NULL (a trigger skipped or undid the
        -- update) are remembered.  (NOT (c IS NULL): a groma_answer with a NULL field is IS NOT NULL by neither
        -- test, but is written).  seen_keys, every row's key found, is only needed to find missing rows by
        -- their primary key (without one, the key hashes the image: not computed for nothing)
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE NOT (t.%2$I IS NULL)),
                    %5$s, pg_catalog.array_agg(%4$s) FILTER (WHERE t.%2$I IS NULL AND t.%3$I IS NOT NULL),
                    pg_catalog.array_agg(t.ctid) FILTER (WHERE t.%2$I IS NULL AND t.%3$I IS NOT NULL)
             FROM ONLY %1$s t WHERE t.ctid OPERATOR(pg_catalog.=) ANY ($1)',
            tbl, caption_column, img_column, key_sql,
            CASE WHEN by_primary_key THEN pg_catalog.format('pg_catalog.array_agg(%s)', key_sql)
                 ELSE 'NULL::pg_catalog.text[]' END) INTO seen, n, seen_keys, more_keys, more_ids USING at_ids;
        unkept_keys := unkept_keys OPERATOR(pg_catalog.||) more_keys;
        remembered_at := remembered_at OPERATOR(pg_catalog.||) more_ids;
        -- a row missing there was moved (or deleted) by a trigger, one updating it again: with a primary key it
        -- is found by its key, unless a trigger changed that too; without one it cannot be followed
        IF seen OPERATOR(pg_catalog.<) COALESCE(pg_catalog.cardinality(at_ids), 0) THEN
            missing := pg_catalog.cardinality(at_ids) OPERATOR(pg_catalog.-) seen;
            IF by_primary_key THEN
                SELECT pg_catalog.array_agg(x.expected) INTO missing_keys FROM pg_catalog.unnest(expected_keys) AS x(expected)
                WHERE NOT x.expected OPERATOR(pg_catalog.=) ANY (COALESCE(seen_keys, '{}'));
                EXECUTE pg_catalog.format(
                    'SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE NOT (t.%2$I IS NULL)),
                            pg_catalog.array_agg(%4$s) FILTER (WHERE t.%2$I IS NULL AND t.%3$I IS NOT NULL),
                            pg_catalog.array_agg(t.ctid) FILTER (WHERE t.%2$I IS NULL AND t.%3$I IS NOT NULL)
                     FROM ONLY %1$s t WHERE (%4$s) OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])',
                    tbl, caption_column, img_column, key_sql) INTO seen, kept, more_keys, more_ids USING missing_keys;
                n := n OPERATOR(pg_catalog.+) kept;
                unkept_keys := unkept_keys OPERATOR(pg_catalog.||) more_keys;
                remembered_at := remembered_at OPERATOR(pg_catalog.||) more_ids;
                missing := missing OPERATOR(pg_catalog.-) seen;
            END IF;
            lost := lost OPERATOR(pg_catalog.+) missing;
        END IF;
        done := done OPERATOR(pg_catalog.+) n;
        COMMIT;
        PERFORM @extschema@.groma_progress_advance(done);
        RAISE NOTICE 'groma_caption_table: % of % rows captioned', done, total;
        -- one call runs the model at most as many times as rows were NULL when it began: rows that become NULL
        -- meanwhile (a trigger setting others back to NULL, rows inserted) cannot keep it running forever
        EXIT WHEN attempted OPERATOR(pg_catalog.>=) total;
    END LOOP;
    PERFORM @extschema@.groma_progress_end();
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM ONLY %s WHERE %I IS NULL AND %I IS NOT NULL', tbl,
                              caption_column, img_column) INTO remaining;
    IF pg_catalog.cardinality(failed_keys) OPERATOR(pg_catalog.>) 0 THEN
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM ONLY %s t WHERE %I IS NULL AND %I IS NOT NULL AND %s',
                                  tbl, caption_column, img_column, skip_test)
            INTO n USING failed_keys, remembered_at;
        RAISE WARNING 'groma_caption_table: % row(s) of % could not be captioned and are left NULL', n, tbl
            USING HINT = 'The warnings above name each row and why; fix or remove their images and CALL it again.';
        remaining := remaining OPERATOR(pg_catalog.-) n;
    END IF;
    IF pg_catalog.cardinality(unkept_keys) OPERATOR(pg_catalog.>) 0 THEN
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM ONLY %s t WHERE %I IS NULL AND %I IS NOT NULL AND %s',
                                  tbl, caption_column, img_column, skip_test)
            INTO n USING unkept_keys, remembered_at;
        IF n OPERATOR(pg_catalog.>) 0 THEN
            RAISE WARNING 'groma_caption_table: % row(s) of % stayed NULL after their UPDATE and were not tried again',
                          n, tbl
                USING DETAIL = 'A trigger on the table skipped the update or set the caption back to NULL.',
                      HINT = 'CALL it again once the trigger lets the update through.';
            remaining := remaining OPERATOR(pg_catalog.-) n;
        END IF;
    END IF;
    IF lost OPERATOR(pg_catalog.>) 0 THEN
        RAISE WARNING 'groma_caption_table: a trigger on % moved % captioned row(s) out of sight after their UPDATE', tbl, lost
            USING DETAIL = CASE WHEN by_primary_key
                                THEN 'A trigger changed their primary key or deleted them, so those rows could not be '
                                     'followed (nor counted as captioned): any of them left NULL may have been '
                                     'captioned more than once.'
                                ELSE 'Without a primary key a row is known by its ctid and image, so rows a trigger '
                                     'updated again could not be followed: any of them left NULL may have been '
                                     'captioned more than once.' END,
                  HINT = CASE WHEN by_primary_key THEN 'Keep the primary key as it is in the table''s triggers.'
                              ELSE 'Give the table a primary key.' END;
    END IF;
    IF remaining OPERATOR(pg_catalog.>) 0 THEN
        RAISE WARNING 'groma_caption_table: % row(s) of % are still NULL: other transactions held them locked, '
                      'row security let them be read but not updated, or they became NULL while it ran',
                      remaining, tbl
            USING HINT = 'CALL it again to caption the rows that were locked or came later.';
    END IF;
END
$proc$;

COMMENT ON PROCEDURE groma_caption_table(regclass, name, name, int, bool, int) IS
'captions the rows of a table whose caption column is NULL, in committed chunks (resumable)';

-- How Citus distributes tbl: 'h' (hash), 'a', 'r' or 'n' (reference and
-- local tables), as pg_dist_partition says; NULL when Citus is absent or
-- tbl is an ordinary table.
CREATE FUNCTION groma_citus_distribution(tbl regclass) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    method text;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT partmethod::text FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1' INTO method USING tbl;
    RETURN method;
END
$fn$;

COMMENT ON FUNCTION groma_citus_distribution(regclass) IS
'internal: how Citus distributes a table (NULL for an ordinary table)';

-- groma_caption_table on a Citus hash-distributed table, from the
-- coordinator: one CALL groma_caption_shard per shard, run on the nodes
-- holding them (Citus's master_run_on_worker, each on a connection of its
-- own, outside this transaction), so every worker captions its own shards
-- with its own groma-server.  The jobs run in rounds of at most
-- citus.max_adaptive_executor_pool_size jobs per node, so a table of many
-- shards does not take every connection slot of its nodes.  Each shard job
-- commits its chunks as it goes; when some fail (a worker's groma-server
-- killed, a cancel) the others still finish, the committed chunks stay, and
-- the error names the failed shards: calling groma_caption_table again
-- captions what is left.  Shard names are schema-qualified, so a worker
-- connection's search_path cannot point a job at another table.
-- Shards with more than one placement, and reference or local tables, are
-- refused (a direct change to one placement would leave the others behind).
-- For the table's owner the shards' metadata stays locked (as a distributed
-- UPDATE locks it) until the jobs end, so a shard move or split waits.
CREATE FUNCTION groma_caption_shards(tbl regclass, img_column name, caption_column name, chunk int, detailed bool,
                                     chunk_mb int)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    method text := @extschema@.groma_citus_distribution(tbl);
    nodes text[];
    ports int[];
    commands text[];
    shards int;
    total bigint;
    remaining bigint;
    failed text[] := '{}';
    job_round int[];
    per_node int := greatest(1, coalesce(pg_catalog.current_setting('citus.max_adaptive_executor_pool_size', true),
                                         '16')::int);
    rounds int;
    count_error text;
    r record;
BEGIN
    IF method IS DISTINCT FROM 'h' THEN
        RAISE EXCEPTION 'groma_caption_table works on hash-distributed Citus tables, and % is not one (partmethod %)',
            tbl, coalesce(method, 'none')
            USING ERRCODE = 'feature_not_supported',
                  HINT = format('Caption it with UPDATE %s SET %I = groma_caption(%I) WHERE %I IS NULL.',
                                tbl, caption_column, img_column, caption_column);
    END IF;
    EXECUTE 'SELECT count(*) FROM (SELECT shardid FROM pg_catalog.pg_dist_shard_placement p
                                   JOIN pg_catalog.pg_dist_shard s USING (shardid)
                                   WHERE s.logicalrelid = $1 GROUP BY shardid HAVING count(*) > 1) x'
        INTO shards USING tbl;
    IF shards > 0 THEN
        RAISE EXCEPTION 'groma_caption_table: % shards of % have more than one placement', shards, tbl
            USING ERRCODE = 'feature_not_supported',
                  HINT = format('Caption it with UPDATE %s SET %I = groma_caption(%I) WHERE %I IS NULL.',
                                tbl, caption_column, img_column, caption_column);
    END IF;
    -- the shards' metadata locked as a distributed UPDATE locks it, until the jobs end: a shard move or split
    -- waits (its copy would miss the captions committed after it) instead of moving a shard a job writes to.
    -- Citus takes the lock for the table's owner only; others run unguarded (the README says not to move then)
    IF pg_catalog.pg_has_role((SELECT relowner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) tbl),
                              'USAGE') THEN
        EXECUTE 'SELECT pg_catalog.lock_shard_metadata(5, (SELECT pg_catalog.array_agg(shardid ORDER BY shardid)
                                                          FROM pg_catalog.pg_dist_shard WHERE logicalrelid = $1))'
            USING tbl;
    END IF;
    -- each job's round: its place among its node's shards, per_node a round
    EXECUTE 'SELECT array_agg(j.nodename ORDER BY j.round, j.shardid), array_agg(j.nodeport ORDER BY j.round, j.shardid),
                    array_agg(j.command ORDER BY j.round, j.shardid), array_agg(j.round ORDER BY j.round, j.shardid)
             FROM (SELECT p.nodename, p.nodeport, s.shardid,
                          (pg_catalog.row_number() OVER (PARTITION BY p.nodename, p.nodeport ORDER BY s.shardid)
                           - 1) / $6 AS round,
                          format(''CALL @extschema@.groma_caption_shard(%L, %L, %L, %s, %L, %s)'',
                                 pg_catalog.shard_name(s.logicalrelid, s.shardid, false), $2, $3, $4, $5, $7) AS command
                   FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_dist_shard_placement p USING (shardid)
                   WHERE s.logicalrelid = $1) j'
        INTO nodes, ports, commands, job_round USING tbl, img_column, caption_column, chunk, detailed, per_node, chunk_mb;
    rounds := coalesce(job_round[cardinality(job_round)], -1) + 1;
    EXECUTE format('SELECT count(*) FROM %s WHERE %I IS NULL AND %I IS NOT NULL', tbl, caption_column, img_column)
        INTO total;
    PERFORM @extschema@.groma_progress_begin(tbl, total);
    FOR k IN 0 .. rounds - 1
    LOOP
        FOR r IN EXECUTE 'SELECT * FROM pg_catalog.master_run_on_worker(
                              (SELECT array_agg(n ORDER BY i) FROM unnest($1, $4) WITH ORDINALITY u(n, rd, i) WHERE rd = $5),
                              (SELECT array_agg(n ORDER BY i) FROM unnest($2, $4) WITH ORDINALITY u(n, rd, i) WHERE rd = $5),
                              (SELECT array_agg(n ORDER BY i) FROM unnest($3, $4) WITH ORDINALITY u(n, rd, i) WHERE rd = $5),
                              true)'
            USING nodes, ports, commands, job_round, k
        LOOP
            IF NOT r.success THEN
                failed := failed || format('%s:%s: %s', r.node_name, r.node_port, r.result);
            END IF;
        END LOOP;
    END LOOP;
    -- the rows left need every node: a node that went away is named instead of failing the count
    BEGIN
        EXECUTE format('SELECT count(*) FROM %s WHERE %I IS NULL AND %I IS NOT NULL', tbl, caption_column, img_column)
            INTO remaining;
        PERFORM @extschema@.groma_progress_advance(greatest(total - remaining, 0));
    EXCEPTION WHEN OTHERS THEN
        count_error := SQLERRM;
    END;
    PERFORM @extschema@.groma_progress_end();
    IF cardinality(failed) > 0 OR count_error IS NOT NULL THEN
        RAISE EXCEPTION 'groma_caption_table: % of % shard jobs failed (%; the chunks they committed are kept): %',
                        cardinality(failed), cardinality(commands),
                        CASE WHEN count_error IS NULL THEN format('%s of %s rows captioned now', total - remaining, total)
                             ELSE format('the rows left could not be counted: %s', count_error) END,
                        array_to_string(failed || count_error, '; ')
            USING ERRCODE = 'external_routine_exception',
                  HINT = 'Once the cause is mended (a node or its groma-server down, a cancel), calling it again '
                         'captions the rest.';
    END IF;
    RAISE NOTICE 'groma_caption_table: % of % rows are captioned now, after % shard jobs on the workers',
        total - remaining, total, cardinality(commands);
    IF remaining > 0 THEN
        RAISE WARNING 'groma_caption_table: % row(s) of % are still NULL after the shard jobs', remaining, tbl
            USING HINT = 'A row whose image failed alone, or whose update a trigger skipped or undid, is left NULL '
                         '(the workers'' logs name each one, and why); '
                         'rows another call held locked, or added meanwhile, are captioned by calling it again.';
    END IF;
END
$fn$;

COMMENT ON FUNCTION groma_caption_shards(regclass, name, name, int, bool, int) IS
'internal: groma_caption_table on a hash-distributed Citus table, one job per shard on the workers';

-- One shard's job of a distributed groma_caption_table, on the node that
-- holds the shard: Citus is told that the shard is changed on purpose, the
-- job stops within a second when the coordinator's connection goes away (a
-- cancel there), then the ordinary chunked loop runs on the shard.  The two
-- settings are session-wide (the loop commits) and set back when it ends
-- without an error (a failed job's connection is closed anyway).
CREATE PROCEDURE groma_caption_shard(shard regclass, img_column name, caption_column name, chunk int, detailed bool,
                                     chunk_mb int DEFAULT 256)
LANGUAGE plpgsql
AS $proc$
DECLARE
    manual_changes pg_catalog.text := pg_catalog.current_setting('citus.enable_manual_changes_to_shards', true);
    check_interval pg_catalog.text := pg_catalog.current_setting('client_connection_check_interval');
BEGIN
    PERFORM pg_catalog.set_config('citus.enable_manual_changes_to_shards', 'on', false);
    PERFORM pg_catalog.set_config('client_connection_check_interval', '1000', false);
    CALL @extschema@.groma_caption_table(shard, img_column, caption_column, chunk, detailed, chunk_mb);
    PERFORM pg_catalog.set_config('citus.enable_manual_changes_to_shards', COALESCE(manual_changes, 'off'), false);
    PERFORM pg_catalog.set_config('client_connection_check_interval', check_interval, false);
END
$proc$;

COMMENT ON PROCEDURE groma_caption_shard(regclass, name, name, int, bool, int) IS
'internal: one shard of a distributed groma_caption_table, run on the node holding it';

-- Progress of bulk captioning: one row per backend running
-- groma_caption_table or an array call groma_caption_many(bytea[]) or
-- groma_regions_many(bytea[]), like
-- PostgreSQL's pg_stat_progress_* views.  rows_done counts committed rows
-- (the procedure's chunks); chunk_done counts the answers received of the
-- array call running now (chunk_rows images sent, NULLs and images refused
-- by their header left out).  A job that fails or is
-- cancelled disappears.
CREATE FUNCTION groma_progress_rows(OUT pid int, OUT datid oid, OUT relid oid, OUT phase text,
                                    OUT rows_total bigint, OUT rows_done bigint,
                                    OUT chunk_rows int, OUT chunk_done int,
                                    OUT started_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'groma_progress_rows'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW groma_progress AS
SELECT p.pid, d.datname, p.relid::regclass AS relid, p.phase, p.rows_total, p.rows_done,
       p.chunk_rows, p.chunk_done, p.started_at,
       round(((p.rows_done::numeric + p.chunk_done)
              / greatest(extract(epoch FROM clock_timestamp() - p.started_at), 0.001))::numeric, 2)
           AS rows_per_second
FROM groma_progress_rows() p LEFT JOIN pg_database d ON d.oid = p.datid;

-- readable by every role, like pg_stat_progress_*: a role sees its own jobs,
-- and every job with the privileges of pg_read_all_stats
GRANT SELECT ON groma_progress TO PUBLIC;

COMMENT ON VIEW groma_progress IS
'progress of bulk captioning (groma_caption_table, groma_caption_many(bytea[])) and of groma_regions_many(bytea[]), one row per backend';

-- groma_progress of this node ('local') and, on a Citus coordinator, of
-- every worker (through run_command_on_workers, node 'host:port'): a
-- distributed groma_caption_table shows as one row here for the whole job
-- (its rows_done set when the shard jobs end) and one row per shard job on
-- the worker running it, moving with each committed chunk.  A worker that
-- cannot answer is left out with a WARNING.
CREATE FUNCTION groma_progress_cluster()
RETURNS TABLE (node text, pid int, datname name, relid text, phase text, rows_total bigint, rows_done bigint,
               chunk_rows int, chunk_done int, started_at timestamptz, rows_per_second numeric)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    w record;
BEGIN
    RETURN QUERY SELECT 'local'::text, p.pid, p.datname, p.relid::text, p.phase, p.rows_total, p.rows_done,
                        p.chunk_rows, p.chunk_done, p.started_at, p.rows_per_second
                 FROM @extschema@.groma_progress p;
    IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'run_command_on_workers'
                   AND pronamespace = 'pg_catalog'::regnamespace) THEN
        RETURN;
    END IF;
    FOR w IN EXECUTE $q$SELECT nodename, nodeport, success, result FROM pg_catalog.run_command_on_workers(
                        'SELECT coalesce(json_agg(p), ''[]'') FROM @extschema@.groma_progress p') ORDER BY nodename, nodeport$q$
    LOOP
        IF NOT w.success THEN
            RAISE WARNING 'groma_progress_cluster: worker %:% did not answer: %', w.nodename, w.nodeport, w.result;
            CONTINUE;
        END IF;
        RETURN QUERY SELECT w.nodename || ':' || w.nodeport, j.pid, j.datname, j.relid, j.phase, j.rows_total,
                            j.rows_done, j.chunk_rows, j.chunk_done, j.started_at, j.rows_per_second
                     FROM json_to_recordset(w.result::json)
                          AS j(pid int, datname name, relid text, phase text, rows_total bigint, rows_done bigint,
                               chunk_rows int, chunk_done int, started_at timestamptz, rows_per_second numeric);
    END LOOP;
END
$fn$;

COMMENT ON FUNCTION groma_progress_cluster() IS
'groma_progress of this node and, on a Citus coordinator, of every worker, with the node of each job';

-- Reports of groma_caption_table to groma_progress (not meant to be called by hand).
CREATE FUNCTION groma_progress_begin(tbl regclass, total bigint) RETURNS void
AS 'MODULE_PATHNAME', 'groma_progress_begin' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION groma_progress_advance(done bigint) RETURNS void
AS 'MODULE_PATHNAME', 'groma_progress_advance' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION groma_progress_end() RETURNS void
AS 'MODULE_PATHNAME', 'groma_progress_end' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION groma_progress_begin(regclass, bigint) IS 'internal: groma_caption_table starts a job shown in groma_progress';
COMMENT ON FUNCTION groma_progress_advance(bigint) IS 'internal: groma_caption_table has committed this many rows';
COMMENT ON FUNCTION groma_progress_end() IS 'internal: groma_caption_table has finished';

-- img with boxes (pixels of the image) drawn as rectangles in distinct
-- colours and, when labels is given (one element per box, NULL for none),
-- a label per box; a JPEG.  Decoded and encoded in groma-server; needs no
-- model.  NULL when img or boxes is NULL.
CREATE FUNCTION groma_draw(img bytea, boxes box[], labels text[] DEFAULT NULL)
RETURNS bytea
AS 'MODULE_PATHNAME', 'groma_draw'
LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION groma_draw(bytea, box[], text[]) IS
'the image as a JPEG with the boxes drawn in distinct colours and an optional label per box';
