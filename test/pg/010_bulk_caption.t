# The bulk captioning path: groma_caption_many(bytea[]) answers in input order
# (NULL for NULL) equal to row-by-row groma_caption; the procedure
# groma_caption_table captions a table in committed chunks, is cancelled
# (pg_cancel_backend from another session) after its first chunk commits,
# and when called again captions only the rest: every row captioned exactly
# once (a trigger counts the updates) and equal to groma_caption(img).
# The groma_progress view shows both kinds of job while they run and
# forgets them when they finish, fail or are cancelled.  A truncated JPEG
# among the rows is left NULL with a warning while the rest is captioned,
# also when a VACUUM FULL between chunks puts another row at its ctid.
# Bad arguments, views, rules, roles without UPDATE and transaction blocks are refused before any
# model work; rows a trigger skips or undoes run the model once each and
# are counted in a warning, as are rows row security keeps out; rows locked by
# others are counted in a warning;
# another role's groma_caption overloads are never called (also on a domain
# over bytea); a child table created or a column altered during a call, and
# a trigger's error with an image's SQLSTATE, do not make it write wrong
# captions or blame the images; the extension works from a schema off the
# search_path.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;

my $node = groma_node('bulk', "groma.max_new_tokens = 4");
step('cluster up, model ready');

# Runs sql and returns its output.
sub sql {
    my ($q) = @_;
    return $node->safe_psql('postgres', $q);
}

# Returns how many GENERATE requests groma-server has logged so far (one line each, answered or failed).
sub generate_requests {
    my @lines = PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ /groma-server: info: request \d+ generate /g;
    return scalar(@lines);
}

my @names = ('extreme_ironing.jpg', 'synthetic_333x251.jpg', 'waterview.jpg');
sql("CREATE TABLE photos (id int PRIMARY KEY, img bytea, caption groma_answer, times int NOT NULL DEFAULT 0)");
for my $i (0 .. 8) {
    sql("INSERT INTO photos (id, img) VALUES ($i + 1, " . image_sql($names[$i % 3]) . ")");
}
# counts every update of a row's caption, so a caption written twice shows
count_caption_writes($node, 'photos');
# the row-by-row answer of each distinct image
sql("CREATE TABLE single AS SELECT img, groma_caption(img)::text AS caption FROM (SELECT DISTINCT img FROM photos) s");
step('row-by-row captions of the 3 images');

# the array form: input order, NULL for NULL, equal to the row-by-row answers
my $arr = sql("WITH c AS MATERIALIZED (SELECT groma_caption_many(ARRAY[
                 (SELECT img FROM photos WHERE id = 3), NULL, (SELECT img FROM photos WHERE id = 1),
                 (SELECT img FROM photos WHERE id = 2), (SELECT img FROM photos WHERE id = 6)]) AS arr)
               SELECT string_agg(CASE WHEN arr[k] IS NULL THEN 't|' ELSE 'f|' || arr[k]::text END, E'\\n' ORDER BY k)
               FROM c, generate_subscripts(c.arr, 1) k");
my $want = sql("SELECT string_agg(CASE WHEN i IS NULL THEN 't|' ELSE 'f|' || s.caption END, E'\\n' ORDER BY k)
                FROM unnest(ARRAY[3, NULL, 1, 2, 6]) WITH ORDINALITY v(i, k)
                LEFT JOIN photos p ON p.id = v.i LEFT JOIN single s ON s.img = p.img");
is($arr, $want, 'groma_caption_many(bytea[]) answers in input order, NULL for NULL, equal to groma_caption(bytea)');
is(sql("SELECT array_lower(a, 1) || ':' || (a[5]::text = a[6]::text AND a[5]::text = (SELECT s.caption FROM single s JOIN photos p
                USING (img) WHERE p.id = 1)) FROM (SELECT groma_caption_many(array_fill(img, ARRAY[2], ARRAY[5])) AS a
                FROM photos WHERE id = 1) s"), '5:true',
   'the answers keep the subscripts of the images (answers[k] answers imgs[k])');
is(sql("SELECT cardinality(groma_caption_many(ARRAY[]::bytea[]))"), 0, 'an empty array gives an empty array');
like(($node->psql('postgres', "SELECT groma_caption_many(ARRAY[img, NULL, ''::bytea]) FROM photos WHERE id = 1"))[2],
     qr/image data is empty.*CONTEXT:  the image imgs\[3\] of the array/s,
     'a bad image among the array is named by its subscript');
is(sql("SELECT groma_caption_many(NULL::bytea[]) IS NULL"), 't', 'a NULL array gives NULL');
is(sql("SET groma.bulk_in_flight = 1; SELECT groma_caption_many(array_agg(img ORDER BY id))::text = "
       . "(SELECT array_agg(s.caption ORDER BY p.id)::text FROM photos p JOIN single s USING (img) WHERE p.id <= 4)
       FROM photos WHERE id <= 4"), 't', 'one request in flight gives the same answers');
step('array form checked');

# groma_progress shows an array call made by hand while it runs, then nothing; it counts the 9 images sent,
# not the NULL element (which gets no answer, so chunk_done never reached it)
my $aq = start_query($node, 'arr', "SELECT groma_caption_many(array_agg(img) || NULL::bytea) FROM photos");
my $seen = wait_until(120, sub {
    sql("SELECT count(*) FROM groma_progress WHERE phase = 'captioning an array' AND relid IS NULL
           AND datname = 'postgres' AND rows_total = 9 AND chunk_rows = 9 AND chunk_done BETWEEN 1 AND 8
           AND pid = (SELECT pid FROM pg_stat_activity WHERE application_name = 'arr')") == 1 });
ok($seen, 'groma_progress shows the array call with some of its 9 answers received');
my ($arc) = finish_query($aq, 120);
is($arc, 0, 'the array call finishes');
is(sql("SELECT count(*) FROM groma_progress"), 0, 'and leaves groma_progress');
# another role reads the view and sees its own jobs only; a role with pg_read_all_stats sees every job
sql("CREATE ROLE watcher; CREATE ROLE nosy; CREATE ROLE stats_reader; GRANT pg_read_all_stats TO stats_reader;
     GRANT SELECT ON photos TO watcher");
$aq = start_query($node, 'arr2', "SET ROLE watcher; SELECT groma_caption_many(array_agg(img)) FROM photos, "
                  . "generate_series(1, 4)");
ok(wait_until(60, sub {
    sql("SET ROLE watcher; SELECT count(*) FROM groma_progress; RESET ROLE; SET ROLE nosy;
         SELECT count(*) FROM groma_progress; RESET ROLE; SET ROLE stats_reader;
         SELECT count(*) FROM groma_progress WHERE phase = 'captioning an array'") eq "1\n0\n1" }),
   "an ordinary role reads groma_progress and sees its own job, another role does not see it, and a role "
   . "with pg_read_all_stats does");
($arc) = finish_query($aq, 120);
is($arc, 0, 'that array call finishes too');
is(sql("SET ROLE nosy; SELECT count(*) FROM groma_status() WHERE last_stderr IS NULL; RESET ROLE; "
       . "SET ROLE stats_reader; SELECT count(*) FROM groma_status() WHERE last_stderr IS NULL; RESET ROLE; "
       . "GRANT pg_read_all_settings TO stats_reader; "
       . "SET ROLE stats_reader; SELECT count(*) FROM groma_status() WHERE last_stderr IS NOT NULL"), "1\n1\n1",
   "groma_status() hides groma-server's last log line (other sessions' requests, the model's files) but from "
   . "pg_read_all_stats with pg_read_all_settings (pg_read_all_stats alone saw the model's path in it)");
step('progress of an array call checked');

# the procedure, cancelled after its first chunk commits
my $q = start_query($node, 'bulk', "CALL groma_caption_table('photos', 'img', 'caption', 3)");
my $first = wait_until(120, sub { sql("SELECT count(*) FROM photos WHERE caption IS NOT NULL") >= 3 });
ok($first, 'the first chunk of 3 commits while the procedure runs');
ok(wait_until(60, sub {
    sql("SELECT count(*) FROM groma_progress WHERE relid = 'photos'::regclass AND phase = 'captioning a table'
           AND rows_total = 9 AND rows_done >= 3 AND chunk_rows IN (0, 3) AND rows_per_second > 0") == 1 }),
    'groma_progress shows the procedure: 9 rows to do, a chunk committed');
sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'bulk'");
my ($rc, $out, $err) = finish_query($q, 60);
step('procedure cancelled');
ok(defined $rc && $rc != 0, 'the cancelled CALL fails');
ok(wait_until(10, sub { sql("SELECT count(*) FROM groma_progress") == 0 }),
    'a cancelled job leaves groma_progress');
like($err, qr/57014|canceling statement due to user request/, 'with query_canceled');
like($err, qr/groma_caption_table: 3 of 9 rows captioned/, 'after a progress NOTICE for the first chunk');
my $part = sql("SELECT count(*) FROM photos WHERE caption IS NOT NULL");
ok($part >= 3 && $part < 9, "the committed chunks stay ($part of 9 rows captioned)");
ok(wait_until(10, sub { status_row($node)->{in_flight} eq '0' }), 'no request is left counted in flight');

# resumed: only the rest is captioned
my ($rc2, $out2, $err2) = $node->psql('postgres',
    "CALL groma_caption_table('photos', 'img', 'caption', 3)");
step('procedure resumed');
is($rc2, 0, 'the CALL again succeeds') or diag($err2);
like($err2, qr/groma_caption_table: \d+ of \d+ rows captioned/,
    'it reports its progress');
unlike($err2 // '', qr/ of 9 rows captioned/, 'it counts only the rows still to caption');
is(sql("SELECT count(*) FROM photos WHERE caption IS NULL"), 0, 'every row is captioned');
is(sql("SELECT count(*) FROM groma_progress"), 0, 'a finished job leaves groma_progress');
is(sql("SELECT count(*) FROM photos WHERE times <> 1"), 0, 'every row was captioned exactly once');
is(sql("SELECT count(*) FROM photos p JOIN single s USING (img) WHERE p.caption::text = s.caption"), 9,
    'every caption equals the row-by-row groma_caption(img)');
my ($rc3, $out3, $err3) = $node->psql('postgres', "CALL groma_caption_table('photos', 'img', 'caption', 3)");
is($rc3, 0, 'a third CALL has nothing to do');
unlike($err3 // '', qr/rows captioned/, 'and reports no chunk');
like(($node->psql('postgres', "CALL groma_caption_table('photos', 'img', 'caption', 0)"))[2],
    qr/chunk must be at least 1/, 'chunk 0 is refused');
like(($node->psql('postgres', "CALL groma_caption_table('photos', 'img', 'caption', 100001)"))[2],
    qr/chunk must be at most 100000/, 'a chunk over what one array call takes is refused before any row is locked');

# a truncated JPEG among the rows: the bad row is left NULL with a warning naming it, the other rows of its chunk
# are captioned by the same array call (it was redone one row at a time), and the procedure goes on to the end
sql("CREATE TABLE mixed (id int PRIMARY KEY, img bytea, caption text)");
for my $i (1 .. 7) {
    my $img = image_sql($names[$i % 3]);
    sql("INSERT INTO mixed VALUES ($i, " . ($i == 4 ? "substring($img FROM 1 FOR 3000)" : $img) . ")");
}
my $requests_before = generate_requests();
my ($rc4, $out4, $err4) = $node->psql('postgres', "CALL groma_caption_table('mixed', 'img', 'caption', 3)");
my $requests_made = generate_requests() - $requests_before;
is($rc4, 0, 'a table with a truncated JPEG is captioned to its end') or diag($err4);
like($err4, qr/WARNING:  groma_caption_table: the row of mixed at ctid \(\d+,\d+\) is left NULL: .*JPEG/,
     'a warning names the row whose image failed, and why');
like($err4, qr/WARNING:  groma_caption_table: 1 row\(s\) of mixed could not be captioned and are left NULL/,
     'a last warning counts the rows left NULL');
like($err4, qr/groma_caption_table: 6 of 7 rows captioned/, 'the progress counts the 6 rows captioned');
is(sql("SELECT string_agg(id::text, ',') FROM mixed WHERE caption IS NULL"), '4', 'only that row is left NULL');
is(sql("SELECT count(*) FROM mixed m JOIN single s USING (img) WHERE m.caption = (s.caption::groma_answer).text"), 6,
   'the other captions equal the row-by-row groma_caption(img)');
my ($rc5, $out5, $err5) = $node->psql('postgres', "CALL groma_caption_table('mixed', 'img', 'caption', 3)");
is($rc5, 0, 'calling it again tries the bad row once more and ends');
like($err5, qr/1 row\(s\) of mixed could not be captioned/, 'warning about it again');
is($requests_made, 7, 'the model was asked once per row: the chunk holding the bad row was not redone');

# a VACUUM FULL between two chunks moves another row to the ctid of a row whose image failed: that row is
# still captioned (it was left NULL, counted as a bad image, when skipped rows were known by ctid alone).
# The choreography: row 1 (bad) fails in chunk 1; chunk 2's trigger waits for an advisory lock another
# session holds; meanwhile row 1 is updated (its new version goes to the end of the heap) and a VACUUM FULL
# queues for its lock; the lock is let go, chunk 2 commits, and the VACUUM FULL runs before chunk 3, writing
# row 3 at (0,1), where row 1 was.  The bad row is not tried again (each row runs the model at most once a
# call); with a primary key it is still known as the bad row at the end, without one (known by its ctid and
# image) it is counted among the rows still NULL.
sub vacuum_full_between_chunks {
    my ($table, $primary_key) = @_;
    sql("CREATE TABLE $table (id int" . ($primary_key ? ' PRIMARY KEY' : '') . ", img bytea, caption text, note text)");
    for my $i (1 .. 4) {
        my $img = image_sql($names[$i % 3]);
        sql("INSERT INTO $table (id, img) VALUES ($i, " . ($i == 1 ? "substring($img FROM 1 FOR 3000)" : $img) . ")");
    }
    # (the trigger also notes where each row was when it was captioned)
    sql("CREATE TABLE ${table}_log (id int, at tid)");
    sql(qq{CREATE FUNCTION ${table}_wait() RETURNS trigger LANGUAGE plpgsql AS \$\$
          BEGIN
              PERFORM pg_advisory_xact_lock(4242);
              INSERT INTO ${table}_log SELECT OLD.id, ctid FROM $table WHERE id = OLD.id;
              RETURN NEW;
          END \$\$});
    sql("CREATE TRIGGER wait_for_4242 BEFORE UPDATE ON $table FOR EACH ROW
         WHEN (OLD.caption IS NULL AND NEW.caption IS NOT NULL) EXECUTE FUNCTION ${table}_wait()");
    is(sql("SELECT ctid FROM $table WHERE id = 1"), '(0,1)', "$table: the bad row is at (0,1)");
    my $holder = start_query($node, 'holder', "SELECT pg_advisory_lock(4242); SELECT pg_sleep(600)");
    ok(wait_until(20, sub { sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'holder'
                                 AND wait_event = 'PgSleep'") == 1 }), "$table: another session holds the advisory lock");
    my $before = generate_requests();
    my $mover = start_query($node, 'mover', "CALL groma_caption_table('$table', 'img', 'caption', 1)");
    ok(wait_until(60, sub { sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                                 WHERE a.application_name = 'mover' AND l.locktype = 'advisory' AND NOT l.granted") == 1 }),
       "$table: the procedure waits in its second chunk, after the bad row failed");
    is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM $table WHERE caption IS NULL"), '1,2,3,4',
       "$table: nothing is committed but the first chunk, which captioned nothing");
    sql("UPDATE $table SET note = 'moved' WHERE id = 1");
    my $vacuum = start_query($node, 'vacuum', "VACUUM FULL $table");
    ok(wait_until(20, sub { sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                                 WHERE a.application_name = 'vacuum' AND l.relation = '$table'::regclass
                                 AND NOT l.granted") == 1 }), "$table: a VACUUM FULL waits for the table");
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'holder'");
    finish_query($holder, 20);
    my ($rcm, $outm, $errm) = finish_query($mover, 120);
    is($rcm, 0, "$table: the procedure ends") or diag($errm);
    is((finish_query($vacuum, 60))[0], 0, "$table: the VACUUM FULL ran");
    is(sql("SELECT at FROM ${table}_log WHERE id = 3"), '(0,1)', "$table: row 3 was captioned at (0,1), where the bad row failed");
    unlike($errm, qr/the row of $table at ctid \(0,3\) is left NULL/,
           "$table: the bad row, moved to (0,3) by the VACUUM FULL, is not tried again");
    is(generate_requests() - $before, 4, "$table: the model ran once per row");
    is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM $table WHERE caption IS NULL"), '1',
       "$table: every row but the bad one is captioned") or diag($errm);
    if ($primary_key) {
        like($errm, qr/WARNING:  (01000: )?groma_caption_table: 1 row\(s\) of $table could not be captioned/,
             "$table: the last warning counts the one bad row (known by its primary key)");
    } else {
        like($errm, qr/WARNING:  (01000: )?groma_caption_table: 1 row\(s\) of $table are still NULL/,
             "$table: without a primary key the moved bad row is no longer known: the last warning counts it as still NULL");
    }
}
vacuum_full_between_chunks('moved', 1);
vacuum_full_between_chunks('moved_nokey', 0);

# Holds a CALL inside its first chunk: a trigger on $table waits for advisory lock $key, which another session
# holds; returns (the CALL, the holder) once the CALL waits there.
sub hold_first_chunk {
    my ($table, $key, $call) = @_;
    sql(qq{CREATE FUNCTION wait_for_$key() RETURNS trigger LANGUAGE plpgsql AS \$\$
           BEGIN PERFORM pg_advisory_xact_lock($key); RETURN NEW; END \$\$});
    sql("CREATE TRIGGER wait_for_$key BEFORE UPDATE ON $table FOR EACH ROW EXECUTE FUNCTION wait_for_$key()");
    my $holder = start_query($node, "holder$key", "SELECT pg_advisory_lock($key); SELECT pg_sleep(600)");
    wait_until(20, sub { sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'holder$key'
                              AND wait_event = 'PgSleep'") == 1 });
    my $caller = start_query($node, "caller$key", $call);
    ok(wait_until(60, sub { sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                                 WHERE a.application_name = 'caller$key' AND l.locktype = 'advisory'
                                 AND NOT l.granted") == 1 }), "the CALL on $table waits in its first chunk");
    return ($caller, $holder);
}

# Lets a CALL held by hold_first_chunk go on; returns its (rc, stdout, stderr).
sub release_first_chunk {
    my ($caller, $holder, $key) = @_;
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'holder$key'");
    finish_query($holder, 20);
    return finish_query($caller, 120);
}

# a child table created (INHERITS) while the procedure runs is left alone: its rows' ctids repeat the parent's,
# and reading the parent with its children paired rows with other rows' images (captions written into the
# child's rows, parent rows left NULL)
sql("CREATE TABLE inh (id int, img bytea, caption text)");
for my $i (1 .. 6) {
    sql("INSERT INTO inh VALUES ($i, " . image_sql($names[$i % 3]) . ")");
}
my ($inh_call, $inh_holder) = hold_first_chunk('inh', 4343, "CALL groma_caption_table('inh', 'img', 'caption', 2)");
sql("CREATE TABLE inh_child () INHERITS (inh)");
for my $i (1 .. 6) {
    sql("INSERT INTO inh_child VALUES (10 + $i, " . image_sql($names[($i + 1) % 3]) . ")");
}
my ($rci, $outi, $erri) = release_first_chunk($inh_call, $inh_holder, 4343);
is($rci, 0, 'a child table created during the call: the procedure ends') or diag($erri);
is(sql("SELECT count(*) FROM ONLY inh i JOIN single s USING (img) WHERE i.caption = (s.caption::groma_answer).text"), 6,
   'every row of the table has its own image\'s caption') or diag($erri);
is(sql("SELECT count(*) FROM inh_child WHERE caption IS NOT NULL"), 0, 'the child\'s rows are left alone');
like($erri, qr/6 of 6 rows captioned/, 'it counts the table\'s rows alone');
unlike($erri, qr/still NULL/, 'and warns of no row left NULL');

# the caption column's type changed between chunks (groma_answer to text): later chunks store the answer's text,
# not the composite's text form "(text,{...})"
sql("CREATE TABLE alt (id int, img bytea, caption groma_answer)");
for my $i (1 .. 6) {
    sql("INSERT INTO alt VALUES ($i, " . image_sql($names[$i % 3]) . ")");
}
my ($alt_call, $alt_holder) = hold_first_chunk('alt', 4344, "CALL groma_caption_table('alt', 'img', 'caption', 2)");
my $alter = start_query($node, 'alter', "ALTER TABLE alt ALTER COLUMN caption TYPE text USING (caption).text");
ok(wait_until(20, sub { sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                             WHERE a.application_name = 'alter' AND l.relation = 'alt'::regclass
                             AND NOT l.granted") == 1 }), 'an ALTER TABLE ... TYPE text waits for the first chunk');
my ($rca, $outa, $erra) = release_first_chunk($alt_call, $alt_holder, 4344);
is((finish_query($alter, 60))[0], 0, 'the ALTER TABLE ran between chunks');
is($rca, 0, 'the procedure ends') or diag($erra);
is(sql("SELECT count(*) FROM alt a JOIN single s USING (img) WHERE a.caption = (s.caption::groma_answer).text"), 6,
   'every row holds its caption\'s text, before the change and after it') or diag(sql("SELECT caption FROM alt"));

# an error of the table's own trigger with an image's SQLSTATE (22P03) is not taken for a bad image: the call ends
# with it (the chunk was redone row by row, every row then left NULL as a bad image, with a model call each)
sql("CREATE TABLE trig (id int, img bytea, caption text)");
sql("INSERT INTO trig VALUES (1, " . image_sql($names[0]) . "), (2, " . image_sql($names[1]) . ")");
sql(q{CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'JPEG refused by the audit trigger' USING ERRCODE = '22P03'; END $$});
sql("CREATE TRIGGER refuse AFTER UPDATE ON trig FOR EACH ROW EXECUTE FUNCTION refuse_update()");
my $served_before = status_row($node)->{served};
my ($rct, $outt, $errt) = $node->psql('postgres', "CALL groma_caption_table('trig', 'img', 'caption', 2)");
isnt($rct, 0, 'a trigger raising 22P03 ends the call');
like($errt, qr/JPEG refused by the audit trigger/, 'with the trigger\'s error');
unlike($errt, qr/left NULL|one at a time/, 'no row is taken for a bad image');
is(status_row($node)->{served} - $served_before, 2, 'the model was asked once per row, not again row by row');

# a limit that is not the image's (an answer longer than the context) fails every row: it ends the call
sql("CREATE TABLE ctx (id int PRIMARY KEY, img bytea, caption text)");
sql("INSERT INTO ctx VALUES (1, " . image_sql($names[0]) . "), (2, " . image_sql($names[1]) . ")");
my ($rc6, $out6, $err6) = $node->psql('postgres',
    "SET groma.max_new_tokens = 4096; CALL groma_caption_table('ctx', 'img', 'caption', 3)");
ok($rc6 != 0, 'an answer longer than the context ends the call instead of skipping every row');
like($err6, qr/context/, 'with the error of the limit') or diag($err6);
unlike($err6, qr/left NULL/, 'and no row is reported as a bad image');
is(sql("SELECT count(*) FROM ctx WHERE caption IS NULL"), 2, 'the rows stay NULL');

# a partitioned table is refused: its rows' ctids repeat across partitions
sql("CREATE TABLE parted (id int, img bytea, caption text) PARTITION BY RANGE (id)");
sql("CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10)");
my ($rc7, $out7, $err7) = $node->psql('postgres', "CALL groma_caption_table('parted', 'img', 'caption')");
like($err7, qr/parted has partitions or child tables.*HINT:  CALL it on each partition/s,
     'a partitioned table is refused, naming what to do') or diag($err7);
step('a truncated JPEG among the rows');

# arguments and tables it cannot take are refused before any model work
sub call_err {
    my ($q) = @_;
    my ($rc, $out, $err) = $node->psql('postgres', $q, extra_params => [ '-v', 'VERBOSITY=verbose' ],
                                       on_error_stop => 0);
    return $err;
}
sql("CREATE TABLE small (id int PRIMARY KEY, img bytea, caption text)");
sql("INSERT INTO small VALUES (1, " . image_sql($names[0]) . "), (2, " . image_sql($names[1]) . "), (3, "
    . image_sql($names[2]) . ")");
my $served = status_row($node)->{served};
like(call_err("CALL groma_caption_table('small', 'img', 'caption', 2, NULL)"), qr/22004.*detailed must be true or false/s,
     'detailed NULL is refused (it made the procedure loop, writing NULL captions)');
sql("CREATE VIEW small_view AS SELECT * FROM small");
like(call_err("CALL groma_caption_table('small_view', 'img', 'caption')"), qr/42809.*small_view is not a table \(it is a view\)/s,
     'a view is refused');
like(call_err("CALL groma_caption_table(4000000000::oid::regclass, 'img', 'caption')"),
     qr/42P01.*there is no relation with OID 4000000000/s, 'an OID naming no relation is refused as such');
like(call_err("CALL groma_caption_table('small', 'img', 'img')"), qr/22023.*both "img"/s,
     'the same column for the image and the caption is refused');
like(call_err("CALL groma_caption_table('small', 'id', 'caption')"), qr/42804.*"id" of (public\.)?small is of type integer, not bytea/s,
     'an image column that is not bytea is refused');
sql("CREATE ROLE only_reads; GRANT SELECT ON small TO only_reads; CREATE ROLE column_writer;
     GRANT SELECT (id, img, caption), UPDATE (caption) ON small TO column_writer");
like(call_err("SET ROLE only_reads; CALL groma_caption_table('small', 'img', 'caption')"),
     qr/42501.*permission denied for table (public\.)?small.*needs SELECT on (public\.)?small and UPDATE on its column caption/s,
     'a role without UPDATE on the caption column is refused');
like(call_err("SET ROLE column_writer; CALL groma_caption_table('small', 'img', 'caption')"),
     qr/42501.*permission denied for table (public\.)?small/s, 'and so is one with column privileges only');
like(call_err("BEGIN; CALL groma_caption_table('small', 'img', 'caption'); ROLLBACK"),
     qr/invalid transaction termination/, 'a CALL inside a transaction block fails');
is(status_row($node)->{served}, $served, 'and none of these ran the model');

# rows a trigger skips (or sets back to NULL) are captioned once each and remembered, not taken again in every
# chunk: the call ends with a warning counting them; rows row security keeps from being updated are never
# taken
sub call_counting {
    my ($q) = @_;
    my $before = generate_requests();
    my ($rc, $out, $err) = $node->psql('postgres', "SET statement_timeout = '60s'; $q");
    return ($rc, $err, generate_requests() - $before);
}
sql(q{CREATE FUNCTION skip_update() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$});
sql("CREATE TRIGGER skip BEFORE UPDATE ON small FOR EACH ROW EXECUTE FUNCTION skip_update()");
my ($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('small', 'img', 'caption', 2)");
is($rcs, 0, 'a trigger skipping every update does not fail the call') or diag($errs);
like($errs, qr/WARNING:  groma_caption_table: 3 row\(s\) of small stayed NULL after their UPDATE and were not tried again.*DETAIL:  A trigger/s,
     'it warns of the 3 rows the trigger skipped');
is($runs, 3, 'and the model ran once per row (the old procedure took them again, then failed)');
sql("DROP TRIGGER skip ON small");
sql(q{CREATE FUNCTION null_caption() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.id <> 2 THEN NEW.caption := NULL; END IF; RETURN NEW; END$$});
sql("CREATE TRIGGER undo BEFORE UPDATE ON small FOR EACH ROW EXECUTE FUNCTION null_caption()");
($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('small', 'img', 'caption', 1)");
is($rcs, 0, 'a trigger setting two captions back to NULL does not fail the call') or diag($errs);
like($errs, qr/2 row\(s\) of small stayed NULL after their UPDATE/, 'it warns of those 2 rows');
is($runs, 3, 'each of the 3 rows ran the model once (their new row versions are remembered)');
is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM small WHERE caption IS NOT NULL"), '2',
   'the row the trigger let through is captioned');
sql("DROP TRIGGER undo ON small");
sql("UPDATE small SET caption = NULL");
# row security: a role that may read every row but update only id 2
sql("CREATE ROLE rls_user; GRANT SELECT, UPDATE ON small TO rls_user; ALTER TABLE small ENABLE ROW LEVEL SECURITY;
     CREATE POLICY reads ON small FOR SELECT TO rls_user USING (true);
     CREATE POLICY updates ON small FOR UPDATE TO rls_user USING (id = 2)");
($rcs, $errs, $runs) = call_counting("SET ROLE rls_user; CALL groma_caption_table('small', 'img', 'caption', 2)");
is($rcs, 0, 'rows row security keeps from being updated do not fail the call') or diag($errs);
like($errs, qr/2 row\(s\) of small are still NULL: .*row security let them be read but not updated/s,
     'it warns of those 2 rows');
is($runs, 1, 'and ran the model for the one row it may update');
is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM small WHERE caption IS NOT NULL"), '2',
   'the row the policy lets it update is captioned');
sql("ALTER TABLE small DISABLE ROW LEVEL SECURITY; DROP POLICY reads ON small; DROP POLICY updates ON small");
sql("UPDATE small SET caption = NULL");
# an AFTER trigger that sets the caption back to NULL (updating the row again, which moves it), and the same
# as a deferred constraint trigger (at COMMIT): the rows are followed by their primary key, each runs the model
# once, the progress counts the one row kept, and the warning the two undone
# (the trigger's function sets the caption of the row it fires for back to NULL, but for row 2, in any table)
sql(q{CREATE FUNCTION null_after() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
          IF NEW.caption IS NOT NULL AND NEW.id <> 2 THEN
              EXECUTE format('UPDATE %I SET caption = NULL WHERE id = $1', TG_TABLE_NAME) USING NEW.id;
          END IF;
          RETURN NULL;
      END$$});
for my $trigger ("CREATE TRIGGER undo_after AFTER UPDATE ON small FOR EACH ROW EXECUTE FUNCTION null_after()",
                 "CREATE CONSTRAINT TRIGGER undo_after AFTER UPDATE ON small DEFERRABLE INITIALLY DEFERRED
                  FOR EACH ROW EXECUTE FUNCTION null_after()") {
    my $kind = $trigger =~ /DEFERRED/ ? 'a deferred trigger' : 'an AFTER trigger';
    sql($trigger);
    ($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('small', 'img', 'caption', 2)");
    is($rcs, 0, "$kind setting captions back to NULL does not fail the call") or diag($errs);
    is($runs, 3, "$kind: each row ran the model once");
    my @notices = $errs =~ /NOTICE:  groma_caption_table: (\d+) of 3 rows captioned/g;
    is($notices[-1], 1, "$kind: the progress counts the one row kept") or diag($errs);
    like($errs, qr/2 row\(s\) of small stayed NULL after their UPDATE/, "$kind: the warning counts the 2 undone");
    is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM small WHERE caption IS NOT NULL"), '2',
       "$kind: the row it let through is captioned");
    sql("DROP TRIGGER undo_after ON small");
    sql("UPDATE small SET caption = NULL");
}
# an AFTER trigger that updates every captioned row again (a "last changed" column): each is captioned once
sql("ALTER TABLE small ADD COLUMN changed int NOT NULL DEFAULT 0");
sql(q{CREATE FUNCTION touch_after() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
          IF pg_trigger_depth() = 1 THEN UPDATE small SET changed = changed + 1 WHERE id = NEW.id; END IF;
          RETURN NULL;
      END$$});
sql("CREATE TRIGGER touch_after AFTER UPDATE ON small FOR EACH ROW EXECUTE FUNCTION touch_after()");
($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('small', 'img', 'caption', 2)");
is($rcs, 0, 'an AFTER trigger moving the captioned rows does not fail the call') or diag($errs);
is($runs, 3, 'each row ran the model once');
unlike($errs, qr/WARNING/, 'and there is no warning') or diag($errs);
like($errs, qr/NOTICE:  groma_caption_table: 3 of 3 rows captioned/, 'the progress counts the 3 rows');
is(sql("SELECT count(*) FROM small WHERE caption IS NOT NULL AND changed = 1"), 3, 'every row is captioned and touched once');
sql("DROP TRIGGER touch_after ON small; ALTER TABLE small DROP COLUMN changed");
sql("UPDATE small SET caption = NULL");
# without a primary key such rows cannot be followed: a warning says so, and the model still runs at most once
# per row NULL at the start
sql("CREATE TABLE nokey AS SELECT id, img, caption FROM small");
sql("CREATE TRIGGER undo_after AFTER UPDATE ON nokey FOR EACH ROW EXECUTE FUNCTION null_after()");
($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('nokey', 'img', 'caption', 1)");
is($rcs, 0, 'without a primary key, an AFTER trigger undoing captions does not fail the call') or diag($errs);
like($errs, qr/WARNING:  groma_caption_table: a trigger on nokey moved \d+ captioned row\(s\) out of sight after their UPDATE.*primary key/s,
     'a warning says the rows could not be followed without a primary key');
is($runs, 3, 'the model ran 3 times for the 3 rows NULL at the start');
# a groma_answer with a NULL field (a trigger dropping the groundings) is a caption written: counted, not remembered
sql("CREATE TABLE answers (id int PRIMARY KEY, img bytea, caption groma_answer)");
sql("INSERT INTO answers SELECT id, img FROM small");
sql(q{CREATE FUNCTION drop_groundings() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN NEW.caption := ROW((NEW.caption).text, NULL)::groma_answer; RETURN NEW; END$$});
sql("CREATE TRIGGER drop_groundings BEFORE UPDATE ON answers FOR EACH ROW EXECUTE FUNCTION drop_groundings()");
($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('answers', 'img', 'caption', 2)");
is($rcs, 0, 'captions with NULL groundings are written') or diag($errs);
like($errs, qr/NOTICE:  groma_caption_table: 3 of 3 rows captioned/, 'and counted as captioned');
unlike($errs, qr/stayed NULL/, 'not as left NULL');
# a primary key with an INCLUDE column an AFTER trigger changes: the key is its key columns alone
sql("CREATE TABLE incl (id int, upd int NOT NULL DEFAULT 0, img bytea, caption text, PRIMARY KEY (id) INCLUDE (upd))");
sql("INSERT INTO incl (id, img) SELECT id, img FROM small");
sql(q{CREATE FUNCTION bump_upd() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.upd = 0 THEN UPDATE incl SET upd = 1 WHERE id = NEW.id; END IF; RETURN NULL; END$$});
sql("CREATE TRIGGER bump_upd AFTER UPDATE ON incl FOR EACH ROW EXECUTE FUNCTION bump_upd()");
($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('incl', 'img', 'caption', 2)");
like($errs, qr/NOTICE:  groma_caption_table: 3 of 3 rows captioned/, 'an INCLUDE column of the primary key is not '
     . 'part of a row\'s identity: the rows an AFTER trigger changes it in are followed') or diag($errs);
unlike($errs, qr/WARNING/, 'with no warning');
# a trigger changing the primary key, and another updating the row again: the row cannot be followed, and a
# warning says so; the model still runs once per row
sql("CREATE TABLE rekeyed (id int PRIMARY KEY, touched int NOT NULL DEFAULT 0, img bytea, caption text)");
sql("INSERT INTO rekeyed (id, img) SELECT id, img FROM small");
sql(q{CREATE FUNCTION rekey() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF OLD.caption IS NULL AND NEW.caption IS NOT NULL THEN NEW.id := NEW.id + 1000; END IF; RETURN NEW; END$$});
sql(q{CREATE FUNCTION touch_reset() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.touched = 0 THEN UPDATE rekeyed SET touched = 1, caption = NULL WHERE id = NEW.id; END IF;
            RETURN NULL; END$$});
sql("CREATE TRIGGER rekey BEFORE UPDATE ON rekeyed FOR EACH ROW EXECUTE FUNCTION rekey()");
sql("CREATE TRIGGER touch_reset AFTER UPDATE ON rekeyed FOR EACH ROW EXECUTE FUNCTION touch_reset()");
($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('rekeyed', 'img', 'caption', 2)");
like($errs, qr/WARNING:  groma_caption_table: a trigger on rekeyed moved 3 captioned row\(s\) out of sight after their UPDATE.*changed their primary key/s,
     'a trigger changing the primary key: the rows it moves are counted in a warning') or diag($errs);
is($runs, 3, 'and the model ran 3 times for the 3 rows');
# rows that become NULL while it runs (a trigger inserting one for each caption) do not make a chunk go past the
# rows NULL at the start
sql("CREATE TABLE grows (id serial PRIMARY KEY, img bytea, caption text)");
sql("INSERT INTO grows (img) SELECT img FROM small");
sql(q{CREATE FUNCTION add_row() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.caption IS NOT NULL AND OLD.caption IS NULL THEN INSERT INTO grows (img) VALUES (NEW.img); END IF;
            RETURN NULL; END$$});
sql("CREATE TRIGGER add_row AFTER UPDATE ON grows FOR EACH ROW EXECUTE FUNCTION add_row()");
($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('grows', 'img', 'caption', 2)");
is($runs, 3, 'rows inserted while it runs do not take it past the 3 rows NULL at its start (the last chunk is cut to 1)')
  or diag($errs);
# without a primary key, a BEFORE trigger that updates its own row and skips the update moves it out of sight
sql("CREATE TABLE self_update (id int, touched int NOT NULL DEFAULT 0, img bytea, caption text)");
sql("INSERT INTO self_update (id, img) SELECT id, img FROM small");
sql(q{CREATE FUNCTION self_update() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
          IF NEW.caption IS NOT NULL AND NEW.id = 1 THEN UPDATE self_update SET touched = touched + 1 WHERE id = 1; RETURN NULL; END IF;
          RETURN NEW;
      END$$});
sql("CREATE TRIGGER self_update BEFORE UPDATE ON self_update FOR EACH ROW EXECUTE FUNCTION self_update()");
($rcs, $errs, $runs) = call_counting("CALL groma_caption_table('self_update', 'img', 'caption', 1)");
like($errs, qr/a trigger on self_update moved 1 captioned row\(s\) out of sight/,
     'without a primary key, a row a BEFORE trigger moves and skips is counted as not followed') or diag($errs);
is($runs, 3, 'and the model ran 3 times for the 3 rows');
sql("CREATE RULE keep AS ON UPDATE TO small DO INSTEAD NOTHING");
like(call_err("CALL groma_caption_table('small', 'img', 'caption')"), qr/0A000.*small has rules on UPDATE/s,
     'a table with rules on UPDATE is refused');
sql("DROP RULE keep ON small");

# a caption column of a domain over text is taken
sql("CREATE DOMAIN caption_text AS text");
sql("ALTER TABLE small ADD COLUMN c2 caption_text");
my ($rcd, $outd, $errd) = $node->psql('postgres', "CALL groma_caption_table('small', 'img', 'c2', 2)");
is($rcd, 0, 'a caption column of a domain over text is captioned') or diag($errd);
is(sql("SELECT count(*) FROM small s JOIN single o USING (img) WHERE s.c2 = (o.caption::groma_answer).text"), 3,
   'with the row-by-row captions');

# rows another transaction holds locked are skipped, and the last warning says they are still NULL
my $locker = start_query($node, 'locker', "BEGIN; SELECT id FROM small WHERE id = 2 FOR UPDATE; SELECT pg_sleep(600)");
ok(wait_until(20, sub { sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'locker'
                             AND wait_event = 'PgSleep'") == 1 }), 'another session locks row 2');
my ($rcl, $outl, $errl) = $node->psql('postgres', "CALL groma_caption_table('small', 'img', 'caption', 2)");
is($rcl, 0, 'the procedure ends');
like($errl, qr/WARNING:  groma_caption_table: 1 row\(s\) of small are still NULL: other transactions held them locked/,
     'warning that the locked row is still NULL') or diag($errl);
sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'");
finish_query($locker, 20);
is(sql("SELECT string_agg(id::text, ',') FROM small WHERE caption IS NULL"), '2', 'only the locked row is NULL');

# another role's overloads of groma_caption on the caller's search_path are never called by the procedure
# (an untyped 'f' once made another role's (bytea[], text) overload win over the extension's function)
sql("CREATE ROLE mallory");
sql("GRANT CREATE ON SCHEMA public TO mallory");
sql(q{SET ROLE mallory; CREATE FUNCTION public.groma_caption_many(imgs bytea[], detailed text) RETURNS groma_answer[]
      LANGUAGE sql AS $$SELECT array_fill(ROW('taken over', '{}')::groma_answer, ARRAY[cardinality(imgs)])$$;
      CREATE FUNCTION public.groma_caption(img bytea, detailed text) RETURNS groma_answer
      LANGUAGE sql AS $$SELECT ROW('taken over', '{}')::groma_answer$$});
sql("UPDATE small SET caption = NULL");
my ($rch, $outh, $errh) = $node->psql('postgres', "SET search_path = public, pg_catalog; "
                                      . "CALL groma_caption_table('small', 'img', 'caption', 2)");
is($rch, 0, 'the procedure runs beside the overloads') or diag($errh);
is(sql("SELECT count(*) FROM small s JOIN single o USING (img) WHERE s.caption = (o.caption::groma_answer).text"), 3,
   'and writes the model\'s captions, not theirs');
sql("DROP FUNCTION public.groma_caption_many(bytea[], text); DROP FUNCTION public.groma_caption(bytea, text)");
# nor an overload on a domain over bytea, exact for an image column of that domain, when a bad image makes a
# chunk go one row at a time (the row-by-row call passed the column as it was, and the overload won)
sql("CREATE DOMAIN photo_bytes AS bytea CHECK (length(VALUE) > 10)");
sql("CREATE TABLE dom (id int, img photo_bytes, caption text)");
sql("INSERT INTO dom VALUES (1, " . image_sql($names[0]) . "), (2, substring(" . image_sql($names[1]) . " FROM 1 FOR 3000))");
sql(q{SET ROLE mallory; CREATE FUNCTION public.groma_caption(img photo_bytes, detailed boolean) RETURNS groma_answer
      LANGUAGE sql AS $$SELECT ROW('taken over', '{}')::groma_answer$$;
      CREATE FUNCTION public.groma_caption_many(imgs photo_bytes[], detailed boolean) RETURNS groma_answer[]
      LANGUAGE sql AS $$SELECT array_fill(ROW('taken over', '{}')::groma_answer, ARRAY[cardinality(imgs)])$$});
($rch, $outh, $errh) = $node->psql('postgres', "CALL groma_caption_table('dom', 'img', 'caption', 2)");
is($rch, 0, 'an image column of a domain over bytea, with a bad image, beside overloads on that domain') or diag($errh);
is(sql("SELECT coalesce(string_agg(id || ':' || caption, ',' ORDER BY id), '') FROM dom WHERE caption = 'taken over'"), '',
   'no row gets the overload\'s caption');
is(sql("SELECT count(*) FROM dom d JOIN single s ON s.img = d.img::bytea WHERE d.caption = (s.caption::groma_answer).text"),
   1, 'the good row has the model\'s caption') or diag(sql("SELECT id, caption FROM dom") . "\n" . $errh);
is(sql("SELECT count(*) FROM dom WHERE id = 2 AND caption IS NULL"), 1, 'and the bad one is left NULL');
sql("DROP FUNCTION public.groma_caption(photo_bytes, boolean); DROP FUNCTION public.groma_caption_many(photo_bytes[], boolean)");
# nor functions of the same signature in a schema the caller puts first, nor built-ins shadowed there
sql(q{CREATE SCHEMA evil; GRANT USAGE ON SCHEMA evil TO PUBLIC;
      CREATE FUNCTION evil.groma_caption_many(imgs bytea[], detailed boolean) RETURNS groma_answer[]
      LANGUAGE sql AS $$SELECT array_fill(ROW('taken over', '{}')::groma_answer, ARRAY[cardinality(imgs)])$$;
      CREATE FUNCTION evil.groma_caption(img bytea, detailed boolean) RETURNS groma_answer
      LANGUAGE sql AS $$SELECT ROW('taken over', '{}')::groma_answer$$;
      CREATE FUNCTION evil.array_agg(tid) RETURNS tid[] LANGUAGE sql AS $$SELECT NULL::tid[]$$});
sql("UPDATE small SET caption = NULL");
($rch, $outh, $errh) = $node->psql('postgres', "SET search_path = evil, public, pg_catalog; "
                                   . "CALL groma_caption_table('small', 'img', 'caption', 2); SHOW search_path");
is($rch, 0, 'the procedure runs with same-signature functions first on the search_path') or diag($errh);
is(sql("SELECT count(*) FROM small s JOIN single o USING (img) WHERE s.caption = (o.caption::groma_answer).text"), 3,
   'and still writes the model\'s captions');
like($outh, qr/^evil, public, pg_catalog$/m, 'the caller\'s search_path is the same after the CALL');
sql("DROP SCHEMA evil CASCADE");
# nor a function whose argument types match a built-in's exactly, in the extension's own schema (public here)
sql(q{SET ROLE mallory; CREATE FUNCTION public.generate_subscripts(tid[], int) RETURNS SETOF int
      LANGUAGE sql AS $$SELECT 1 WHERE false$$});
sql("UPDATE small SET caption = NULL");
($rch, $outh, $errh) = $node->psql('postgres', "CALL groma_caption_table('small', 'img', 'caption', 2)");
is($rch, 0, 'an exact-type generate_subscripts(tid[], int) in the extension\'s schema is not called') or diag($errh);
is(sql("SELECT count(*) FROM small WHERE caption IS NOT NULL"), 3, 'every row is captioned');
sql("DROP FUNCTION public.generate_subscripts(tid[], int)");

# the table's triggers run under the caller's search_path, as for the caller's own UPDATE
sql(q{CREATE SCHEMA app; CREATE TABLE app.audit (id int); CREATE TABLE public.audit (id int);
      CREATE TABLE app.ph (id int, img bytea, caption text);
      CREATE FUNCTION app.note() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO audit VALUES (NEW.id);
                                                                         RETURN NEW; END$$;
      CREATE TRIGGER note AFTER UPDATE ON app.ph FOR EACH ROW EXECUTE FUNCTION app.note()});
sql("INSERT INTO app.ph VALUES (1, " . image_sql($names[0]) . ")");
($rch, $outh, $errh) = $node->psql('postgres', "SET search_path = app, public; CALL groma_caption_table('ph', 'img', 'caption')");
is($rch, 0, 'a table with a trigger using unqualified names is captioned') or diag($errh);
is(sql("SELECT (SELECT count(*) FROM app.audit) || '/' || (SELECT count(*) FROM public.audit)"), '1/0',
   'and its trigger wrote to the table the caller\'s search_path names');

# a trigger that sets other rows back to NULL cannot keep it running: one call captions as many rows as were NULL
sql(q{CREATE TABLE pingpong (id int PRIMARY KEY, img bytea, caption text);
      CREATE FUNCTION pingpong() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN
          IF pg_trigger_depth() = 1 THEN UPDATE pingpong SET caption = NULL WHERE id <> NEW.id; END IF;
          RETURN NEW; END$$;
      CREATE TRIGGER pingpong AFTER UPDATE OF caption ON pingpong FOR EACH ROW EXECUTE FUNCTION pingpong()});
sql("INSERT INTO pingpong VALUES (1, " . image_sql($names[1]) . "), (2, " . image_sql($names[1]) . ")");
($rch, $outh, $errh) = $node->psql('postgres', "SET statement_timeout = '60s'; "
                                   . "CALL groma_caption_table('pingpong', 'img', 'caption', 1)");
is($rch, 0, 'a trigger setting other rows back to NULL does not keep the call running') or diag($errh);
like($errh, qr/2 of 2 rows captioned.*1 row\(s\) of pingpong are still NULL/s, 'it stops after 2 rows, warning of 1 NULL');

# a generated caption column is refused before any model work
sql("CREATE TABLE gen (id int, img bytea, caption text GENERATED ALWAYS AS (NULL::text) STORED)");
sql("INSERT INTO gen (id, img) VALUES (1, " . image_sql($names[0]) . ")");
$served = status_row($node)->{served};
like(call_err("CALL groma_caption_table('gen', 'img', 'caption')"), qr/42809.*"caption" of (public\.)?gen is a generated column/s,
     'a generated caption column is refused');
is(status_row($node)->{served}, $served, 'before any model work');

# installed in a schema of its own, off the search_path, the procedure still finds its functions and types
sql("CREATE DATABASE other");
$node->safe_psql('other', "CREATE SCHEMA ext; CREATE EXTENSION groma WITH SCHEMA ext;
                           CREATE TABLE pics (id int, img bytea, caption ext.groma_answer);
                           INSERT INTO pics VALUES (1, " . image_sql($names[2]) . ")");
my ($rco, $outo, $erro) = $node->psql('other', "CALL ext.groma_caption_table('pics', 'img', 'caption')");
is($rco, 0, 'CREATE EXTENSION groma WITH SCHEMA ext: its procedure works without ext on the search_path') or diag($erro);
is($node->safe_psql('other', "SELECT count(*) FROM pics WHERE caption IS NOT NULL"), 1, 'the row is captioned');
is($node->safe_psql('other', "SELECT count(*) >= 0 FROM ext.groma_progress_cluster()"), 't',
   'and groma_progress_cluster works too');

# in a LATIN1 database an answer that encoding cannot hold fails its row alone: left NULL with a warning saying
# why, the others captioned with the UTF8 database's captions, from the same array call
$node->safe_psql('postgres', "CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'");
$node->safe_psql('latin', "CREATE EXTENSION groma; CREATE TABLE pics (id int, img bytea, caption text)");
for my $i (0 .. 2) {
    $node->safe_psql('latin', "INSERT INTO pics VALUES ($i, " . image_sql($names[$i]) . ")");
}
$requests_before = generate_requests();
my ($rcl1, $outl1, $errl1) = $node->psql('latin', "CALL groma_caption_table('pics', 'img', 'caption', 3)");
$requests_made = generate_requests() - $requests_before;
is($rcl1, 0, 'LATIN1 database: the procedure ends') or diag($errl1);
my $latin_rows = $node->safe_psql('latin', "SET client_encoding = 'UTF8';
    SELECT string_agg(id || ':' || coalesce(caption, 'NULL'), ',' ORDER BY id) FROM pics");
# (the tiny model's captions of images 0 and 2 hold Cyrillic and U+2113, LATIN1 does not; image 1's is ASCII)
my $ascii_caption = sql("SELECT (caption::groma_answer).text FROM single WHERE img = " . image_sql($names[1]));
is($latin_rows, "0:NULL,1:$ascii_caption,2:NULL",
   'the row whose caption LATIN1 holds is captioned as in a UTF8 database, the others left NULL') or diag($errl1);
my @untranslatable = $errl1 =~ /left NULL: its answer has the character U\+[0-9A-F]{4}, which the database's encoding LATIN1 lacks/g;
is(scalar(@untranslatable), 2, 'a warning names each row left NULL and why');
is($requests_made, 3, 'the model was asked once per row (the chunk was not redone row by row)');
step('arguments, triggers, locks, overloads and schemas');

# a chunk holds at most chunk_mb MB of images (its images travel in one bytea[], which PostgreSQL caps at 1 GB:
# a chunk of 100 images of 24 MB failed with 54000 before any model work, every call again): with chunk_mb 1,
# an image padded past 1 MB (17 comment segments of 64 KB after its start: the same pixels) is a chunk alone,
# then 12 copies of waterview.jpg go floor(1 MB / its size) = 10 to a chunk
sql(q{CREATE TABLE heavy (id int PRIMARY KEY, img bytea, caption text)});
my $waterview = image_sql('waterview.jpg');
sql("INSERT INTO heavy VALUES (1, '\\xffd8'::bytea || (SELECT string_agg(decode('fffeffff' || repeat('41', 65533), 'hex'), ''::bytea)
                                                   FROM generate_series(1, 17)) || substring($waterview FROM 3))");
sql("INSERT INTO heavy SELECT g, $waterview FROM generate_series(2, 13) g");
is(sql("SELECT octet_length(img) > 1048576 FROM heavy WHERE id = 1") . '/'
   . sql("SELECT 1048576 / octet_length(img) FROM heavy WHERE id = 2"), 't/10',
   'the padded image is over 1 MB, and 10 copies of the other fit in 1 MB');
my ($rcm, $errm);
($rcm, $errm, $runs) = call_counting("CALL groma_caption_table('heavy', 'img', 'caption', chunk => 16, chunk_mb => 1)");
is($rcm, 0, 'the procedure ends') or diag($errm);
is(join(',', $errm =~ /NOTICE:  groma_caption_table: (\d+) of 13 rows captioned/g), '1,11,13',
   'in chunks of 1 (the image over 1 MB alone), 10 and 2 rows');
is($runs, 13, 'the model ran once per row');
is(sql("SELECT count(DISTINCT caption) || '/' || count(caption) FROM heavy"), '1/13',
   'every row is captioned, the padded image as its copies (the same pixels)');
like(call_err("CALL groma_caption_table('heavy', 'img', 'caption', chunk_mb => 513)"),
     qr/22023.*chunk_mb must be between 1 and 512, not 513.*PostgreSQL caps at 1 GB/s, 'chunk_mb over 512 is refused');
like(call_err("CALL groma_caption_table('heavy', 'img', 'caption', chunk_mb => NULL)"),
     qr/22023.*chunk_mb must be between 1 and 512, not NULL/s, 'and NULL too');
step('chunks cut at chunk_mb');
is(status_row($node)->{restarts}, '0', 'groma-server never restarted');
done_testing();
