-- The functions answered by groma-server, on a cluster with groma preloaded
-- and no groma.model_path (as test/run.sh sets it up): the server runs image
-- checks only, and the model functions say why they cannot run.
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

SELECT server, state, pid > 0 AS has_pid, model_path, queue_depth, running, served >= 0 AS counts,
       weights IS NULL AS no_weights
FROM groma_status();
SELECT groma_ping() BETWEEN 0 AND 1000 AS ping_ms;

-- no model: a clear error, and the session keeps working
SELECT groma_chat(data, 'What is in the image?') FROM img;
SELECT 1 AS still_alive;

-- NULL in, NULL out (not STRICT: refer may be NULL)
SELECT groma_chat(NULL, 'x') IS NULL AS null_img, groma_chat(data, NULL) IS NULL AS null_prompt FROM img;

-- arguments are checked before anything is sent
SELECT groma_chat(data, 'x', ARRAY[NULL::box]) FROM img;
SELECT groma_chat(data, 'x', (SELECT array_agg(box '((1,1),(2,2))') FROM generate_series(1, 17))) FROM img;
SELECT groma_chat('\xffd8ff'::bytea, 'x');

-- the settings and their defaults
SELECT name, boot_val, context, unit FROM pg_settings WHERE name LIKE 'groma.%' ORDER BY name;

-- groma.devices takes GPU ids 0 to 1024, as groma-server's --device-id does, each once; others are refused when set
ALTER SYSTEM SET groma.devices = '0, 1025';
ALTER SYSTEM SET groma.devices = '0, 999999999';
ALTER SYSTEM SET groma.devices = '0, 1, 00';

-- groma.server_watchdog under a second (other than 0, off) is refused: the server counts whole seconds
ALTER SYSTEM SET groma.server_watchdog = '400ms';
ALTER SYSTEM SET groma.server_watchdog = -2;

-- a groma.request_timeout of 1 ms leaves time to send a ping (the time left was rounded down to 0: always over);
-- tried for up to 10 s, since a loaded machine may miss 1 ms now and then
SET groma.request_timeout = 1;
DO $$
DECLARE
    answered boolean := false;
    until timestamptz := clock_timestamp() + interval '10 s';
BEGIN
    WHILE NOT answered AND clock_timestamp() < until LOOP
        BEGIN
            PERFORM groma_ping();
            answered := true;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
    RAISE NOTICE 'with a 1 ms groma.request_timeout, a ping is answered in time: %', answered;
END $$;
RESET groma.request_timeout;
