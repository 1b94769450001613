# groma_caption_table when groma-server is lost under a chunk: an image
# that crashes the server (GROMA_SERVER_TEST_CRASH and a JPEG comment
# asking for it) or hangs it until its watchdog ends it
# (GROMA_SERVER_TEST_STALL) is found by captioning the chunk's rows again
# one at a time, once the restarted server has loaded its model
# (GROMA_SERVER_TEST_LOAD_STALL makes each load last 1 s more, so the chunks
# must wait for it): that row is left NULL with a warning and every other
# row is captioned once, with the answer groma_caption gives it.  Two such
# images in a row are told from a broken server by an image answered
# before; a server that fails that one too (GROMA_SERVER_TEST_CRASH=every)
# ends the call with 58000.  A server killed from outside costs the
# chunk a second pass, not the job; a cancel while the call waits for the
# restart ends it, keeping what it committed.  Reloads that restart the
# server under a chunk have its requests sent again; a reload onto a model
# that does not load ends the call saying so.  Another session's requests
# queued behind a hanging image are sent again, not blamed; a row
# captioned alone runs in model calls of its own; rows answered before the
# loss are sent again together, not one at a time.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use Time::HiRes qw(time sleep);

$ENV{GROMA_SERVER_TEST_CRASH} = '1';	# the postmaster, and so groma-server, inherit these
$ENV{GROMA_SERVER_TEST_STALL} = '1';
$ENV{GROMA_SERVER_TEST_LOAD_STALL} = '1000';
my $node = groma_node('lost', "groma.max_new_tokens = 4\ngroma.server_watchdog = '3s'");
step('cluster up, model ready');

# Runs sql and returns its output.
sub sql {
    my ($q) = @_;
    return $node->safe_psql('postgres', $q);
}

# Restarts the cluster (the launcher's restart backoff starts over) and waits until the server is ready.
sub restart_ready {
    $node->restart;
    ok(wait_until(60, sub { sql("SELECT count(*) FROM groma_status() WHERE state = 'ready'") == 1 }),
       'the cluster restarted, its groma-server ready');
}

# Runs the CALL; returns (exit code, stderr).
sub caption_table {
    my ($table, $chunk) = @_;
    my ($rc, $out, $err) = $node->psql('postgres', "CALL groma_caption_table('$table', 'img', 'caption', chunk => $chunk)",
                                       extra_params => ['-v', 'VERBOSITY=verbose']);
    return ($rc, $err);
}

# Makes table name (id primary key, img, caption, times: how often its caption was written) with one row per
# entry of images: a golden image's name, or [name, words] for that image with a comment holding the words.
sub make_table {
    my ($name, @images) = @_;
    sql("CREATE TABLE $name (id int PRIMARY KEY, img bytea, caption groma_answer, times int NOT NULL DEFAULT 0)");
    count_caption_writes($node, $name);
    for my $i (0 .. $#images) {
        my $img = ref $images[$i] ? marked_image_sql(@{ $images[$i] }) : image_sql($images[$i]);
        sql("INSERT INTO $name (id, img) VALUES ($i + 1, $img)");
    }
}

# Returns "id:times" of the rows whose caption is the one groma_caption gives their image (from the table single).
sub rows_as_alone {
    my ($table) = @_;
    return sql("SELECT string_agg(t.id || ':' || t.times, ',' ORDER BY t.id) FROM $table t JOIN single s
                ON s.img = t.img WHERE t.caption::text = s.caption");
}

# Returns the server's restart count.
sub restarts { return status_row($node)->{restarts}; }

my @names = ('extreme_ironing.jpg', 'synthetic_333x251.jpg', 'waterview.jpg');
sql("CREATE TABLE single (img bytea, caption text)");
sql("INSERT INTO single SELECT i, groma_caption(i)::text FROM (VALUES " . join(', ', map { '(' . image_sql($_) . ')' } @names)
    . ") v(i)");
step('row-by-row captions of the 3 images');

my $crash = ['waterview.jpg', 'groma test: crash'];
my $stall = ['extreme_ironing.jpg', 'groma test: stall'];

# ---- an image that crashes groma-server: left NULL, the rest captioned
make_table('one_crash', @names[0, 1], $crash, @names[2, 0, 1, 2, 0]);
my $restarts = restarts();
my $t0 = time;
my ($rc, $err) = caption_table('one_crash', 4);
is($rc, 0, 'CALL groma_caption_table succeeds with an image that crashes groma-server') or diag($err);
like($err, qr/WARNING:  01000: groma_caption_table: a chunk of 4 row\(s\) of one_crash failed: groma-server was terminated by signal 11 \(Segmentation fault\) while it had this request.*\nDETAIL:  Its rows are captioned again one at a time/,
     'a warning says the chunk failed, and why, and that its rows are captioned one at a time') or diag($err);
like($err, qr/WARNING:  01000: groma_caption_table: the row of one_crash at ctid \(0,3\) is left NULL: captioned alone, it failed again: groma-server was terminated by signal 11/,
     'the row whose image crashes the server is named, with why');
like($err, qr/groma_caption_table: 1 row\(s\) of one_crash could not be captioned and are left NULL/, 'and counted');
is(sql('SELECT string_agg(id::text, \',\') FROM one_crash WHERE caption IS NULL'), '3', 'only that row is NULL');
is(rows_as_alone('one_crash'), '1:1,2:1,4:1,5:1,6:1,7:1,8:1',
   'every other row has the caption groma_caption gives it, written once');
is(restarts() - $restarts, 2, 'the server crashed twice: under the chunk, and on that image alone');
is(status_row($node)->{state}, 'ready', 'and is ready again');
step(sprintf('a crashing image found in a chunk of 4 (%.1f s)', time - $t0));

# ---- the call again tries the row once more (nothing remembers it between calls), as a chunk of one row.  Other
# sessions' requests may have shared that model call, so the row is captioned once more alone, in model calls of
# its own, before it is blamed
$restarts = restarts();
($rc, $err) = caption_table('one_crash', 4);
is($rc, 0, 'a second CALL succeeds') or diag($err);
like($err, qr/a chunk of 1 row\(s\) of one_crash failed: groma-server was terminated by signal 11.*\nDETAIL:  Its rows are captioned again one at a time, each in model calls of its own/,
     'its chunk of one row is captioned again alone') or diag($err);
like($err, qr/the row of one_crash at ctid \(0,3\) is left NULL: captioned alone, it failed again: groma-server was terminated by signal 11/,
     'and leaves the row NULL again');
is(rows_as_alone('one_crash'), '1:1,2:1,4:1,5:1,6:1,7:1,8:1', 'writing no other row');
ok(wait_until(60, sub { (status_row($node)->{state} // '') eq 'ready' }), 'the server comes back');
is(restarts() - $restarts, 2, 'the server crashed twice');
like(PostgreSQL::Test::Utils::slurp_file($node->logfile), qr/request \d+ \(job \d+\) runs alone: no other request joins its model calls/,
     'its log says the row captioned alone ran in model calls of its own');
restart_ready();
step('the second CALL');

# ---- an image that hangs groma-server until its watchdog ends it
make_table('one_hang', $names[1], $stall, $names[2]);
$restarts = restarts();
($rc, $err) = caption_table('one_hang', 3);
is($rc, 0, 'CALL groma_caption_table succeeds with an image that hangs groma-server') or diag($err);
like($err, qr/the row of one_hang at ctid \(0,2\) is left NULL: captioned alone, it failed again: groma-server hung while it had this request \(queued or running\), and its watchdog ended it/,
     'the row whose image hangs the server is named, with why') or diag($err);
is(rows_as_alone('one_hang'), '1:1,3:1', 'the other rows are captioned once');
is(restarts() - $restarts, 2, 'the watchdog ended the server twice');
restart_ready();
step('a hanging image found');

# ---- another session's chunk queued behind that hanging image: its requests were not in the hung model call, so
# they are sent again once the server is back; none of its rows is captioned again alone, or left NULL
make_table('hang_beside', $stall, $names[0]);
make_table('queued_beside', @names);
$restarts = restarts();
my $hang_call = start_query($node, 'hang_call', "CALL groma_caption_table('hang_beside', 'img', 'caption', chunk => 1)");
ok(wait_until(30, sub { (status_row($node)->{model_call_s} // 0) > 0.2 }), 'one session\'s image hangs the server');
my $beside_call = start_query($node, 'beside_call',
                              "CALL groma_caption_table('queued_beside', 'img', 'caption', chunk => 3)");
ok(wait_until(10, sub { (status_row($node)->{queue_depth} // 0) >= 1 }),
   'another session\'s chunk is queued behind the hung call');
ok(wait_until(30, sub { sql("SELECT phase FROM groma_progress WHERE relid = 'hang_beside'::regclass")
                        eq "captioning a lost chunk's rows one at a time" }),
   'groma_progress shows the first CALL captioning its lost chunk\'s rows one at a time');
my ($beside_code, $beside_out, $beside_err) = finish_query($beside_call, 120);
is($beside_code, 0, 'the other CALL succeeds') or diag($beside_err);
unlike($beside_err, qr/WARNING/, 'with no warning: none of its chunks failed, no row is left NULL') or diag($beside_err);
is(rows_as_alone('queued_beside'), '1:1,2:1,3:1', 'every row of it captioned once, as alone');
my ($hang_code, $hang_out, $hang_err) = finish_query($hang_call, 120);
is($hang_code, 0, 'the CALL with the hanging image succeeds') or diag($hang_err);
like($hang_err, qr/the row of hang_beside at ctid \(0,1\) is left NULL: captioned alone, it failed again: groma-server hung/,
     'leaving that image\'s row NULL') or diag($hang_err);
is(rows_as_alone('hang_beside'), '2:1', 'and captioning its other row');
is(restarts() - $restarts, 2, 'the watchdog ended the server twice');
restart_ready();
step('a chunk queued behind a hanging image of another session');

# ---- two crashing images in a row: an image answered before tells the server still works
make_table('two_crash', @names[0, 1], $crash, $crash, $names[2]);
sql('UPDATE two_crash SET caption = groma_caption(img) WHERE id = 1');
$restarts = restarts();
($rc, $err) = caption_table('two_crash', 4);
is($rc, 0, 'CALL groma_caption_table succeeds with two crashing images side by side') or diag($err);
like($err, qr/ctid \(0,3\) is left NULL: captioned alone.*ctid \(0,4\) is left NULL: captioned alone/s,
     'both are named') or diag($err);
is(sql('SELECT string_agg(id::text, \',\' ORDER BY id) FROM two_crash WHERE caption IS NULL'), '3,4', 'both are NULL');
is(rows_as_alone('two_crash'), '1:1,2:1,5:1', 'the other rows are captioned once');
is(restarts() - $restarts, 3, 'three crashes: the chunk, and each image alone (the control image was answered)');
restart_ready();
step('two crashing images in a row');

# ---- a server that fails every image, even one it answered before: the call ends
make_table('broken', @names[0, 1, 2, 0]);
($rc, $err) = caption_table('broken', 2);
is($rc, 0, 'a table captioned while the server is sound') or diag($err);
sql('UPDATE broken SET caption = NULL WHERE id > 2');
$ENV{GROMA_SERVER_TEST_CRASH} = 'every';	# the restarted cluster's groma-server dies on every request
restart_ready();
$restarts = restarts();
($rc, $err) = caption_table('broken', 2);
isnt($rc, 0, 'CALL groma_caption_table fails when the server fails two images in a row and one answered before');
like($err, qr/ERROR:  58000: groma_caption_table: groma-server failed on 2 images of broken in a row, each captioned alone, and on an image it answered before\nDETAIL:  The last failure: groma-server was terminated by signal 11.*\nHINT:  groma-server, not these images, seems at fault/s,
     'saying the server seems at fault') or diag($err);
is(sql('SELECT string_agg(id || \':\' || times, \',\' ORDER BY id) FROM broken WHERE caption IS NOT NULL'), '1:1,2:1',
   'nothing of the failed chunk is written');
ok(wait_until(60, sub { (status_row($node)->{state} // '') eq 'ready' }), 'the server comes back');
is(restarts() - $restarts, 4, 'four crashes: the chunk, two images alone, the image answered before');
# without any image answered before, the call goes on until 8 rows in a row failed alone
make_table('broken_fresh', (@names) x 3);
$restarts = restarts();
($rc, $err) = caption_table('broken_fresh', 8);
like($err, qr/ERROR:  58000: groma_caption_table: groma-server failed on 8 images of broken_fresh in a row, each captioned alone, and no image was answered before to tell whether it can answer any/,
     'with no image answered before, 8 failures in a row end the call') or diag($err);
ok(wait_until(60, sub { (status_row($node)->{state} // '') eq 'ready' }), 'the server comes back');
is(restarts() - $restarts, 9, 'nine crashes: the chunk and its 8 rows alone (restarts after 1 s: each had loaded its model)');
$ENV{GROMA_SERVER_TEST_CRASH} = '1';
restart_ready();
step('a server failing every image');

# ---- two crashing images first in a table nothing was captioned in: left NULL, the rest captioned (no image to
# check the server against, but fewer than 8 failed in a row)
make_table('crash_first', $crash, $crash, @names);
($rc, $err) = caption_table('crash_first', 16);
is($rc, 0, 'CALL groma_caption_table succeeds with two crashing images first') or diag($err);
is(sql('SELECT string_agg(id::text, \',\' ORDER BY id) FROM crash_first WHERE caption IS NULL'), '1,2', 'both are NULL');
is(rows_as_alone('crash_first'), '3:1,4:1,5:1', 'the other rows are captioned once');
restart_ready();
step('two crashing images first');

# ---- two configuration reloads that restart groma-server, the second while the first one's server loads, under a
# chunk: the requests the first server answered "shutting down" are sent again once a new server is up, and the
# call goes on.  As for the kill below, the reloads are sent while a chunk's answers are outstanding, and the table
# made again should they land between two chunks
my ($reload_code, $reload_err, $reload_table, $shut_down) = (undef, '', '', 0);
my $max_queue = 64;
for my $attempt (1 .. 3) {
    $reload_table = "reloaded_$attempt";
    make_table($reload_table, (@names) x 8);
    my $log_at = -s $node->logfile;
    my $q = start_query($node, 'reload_call', "CALL groma_caption_table('$reload_table', 'img', 'caption', chunk => 4)");
    wait_until(60, sub { sql("SELECT count(*) FROM $reload_table WHERE caption IS NOT NULL") >= 4
                         && sql('SELECT count(*) FROM groma_progress WHERE chunk_done < chunk_rows') > 0 });
    for my $reload (1, 2) {
        sleep 1.2 if $reload == 2;	# (each load lasts over 1 s: GROMA_SERVER_TEST_LOAD_STALL)
        $max_queue++;
        sql("ALTER SYSTEM SET groma.max_queue = $max_queue");
        sql('SELECT pg_reload_conf()');
    }
    ($reload_code, undef, $reload_err) = finish_query($q, 120);
    # (the server's lines reach the log through the launcher: a moment after the answers)
    wait_until(3, sub { $shut_down = () = substr(PostgreSQL::Test::Utils::slurp_file($node->logfile), $log_at)
                                          =~ /request \d+ generate .*groma-server is shutting down/g; $shut_down > 0 });
    last if $shut_down > 0;
    note("attempt $attempt: the reload landed between two chunks");
}
ok($shut_down > 0, "the reload stopped the server under a chunk ($shut_down request(s) answered 'shutting down')");
is($reload_code, 0, 'the CALL succeeds although two reloads restarted groma-server under a chunk') or diag($reload_err);
unlike($reload_err, qr/WARNING/, 'with no warning: the chunk was sent again, not captioned row by row') or diag($reload_err);
is(rows_as_alone($reload_table), join(',', map { "$_:1" } 1 .. 24), 'every row is captioned once, as alone');
ok(wait_until(60, sub { (status_row($node)->{state} // '') eq 'ready' }), 'the server is ready');
step('two reloads under a chunk');

# ---- a reload onto a model that does not load, under a chunk: the call ends saying so (not that the server stops)
make_table('reload_bad', (@names) x 8);
my $bad_q = start_query($node, 'reload_bad_call', "CALL groma_caption_table('reload_bad', 'img', 'caption', chunk => 4)");
wait_until(60, sub { sql("SELECT count(*) FROM reload_bad WHERE caption IS NOT NULL") >= 4 });
sql("ALTER SYSTEM SET groma.model_path = '/nonexistent/groma-model'");
sql('SELECT pg_reload_conf()');
my ($bad_code, undef, $bad_err) = finish_query($bad_q, 120);
ok($bad_code != 0 && $bad_err =~ /ERROR:  (55000: )?groma-server could not load its model/,
   'a reload onto a model that does not load ends the CALL saying the model could not load') or diag($bad_err);
ok(sql('SELECT count(*) FROM reload_bad WHERE caption IS NOT NULL') >= 4, 'keeping the chunks it committed');
sql('ALTER SYSTEM RESET groma.model_path');
sql('SELECT pg_reload_conf()');
ok(wait_until(60, sub { (status_row($node)->{state} // '') eq 'ready' }), 'the server is ready on the model again');
step('a reload onto a model that does not load');

# ---- groma-server killed from outside under a chunk: the chunk's rows are captioned again, the job goes on.  The
# kill is sent while a chunk's answers are outstanding; should it land between two chunks all the same (their
# answers come together), the table is made again and the kill sent again, up to three times
my ($code, $out, $killed_table);
for my $attempt (1 .. 3) {
    $killed_table = "killed_$attempt";
    make_table($killed_table, (@names) x 8);
    my $q = start_query($node, 'killed_call', "CALL groma_caption_table('$killed_table', 'img', 'caption', chunk => 4)");
    my $pid = status_row($node)->{pid};
    wait_until(60, sub { sql("SELECT count(*) FROM $killed_table WHERE caption IS NOT NULL") >= 4
                         && sql('SELECT count(*) FROM groma_progress WHERE chunk_done < chunk_rows') > 0 });
    kill 'KILL', $pid;
    ($code, $out, $err) = finish_query($q, 120);
    last if $err =~ /a chunk of 4 row\(s\) of $killed_table failed/;
    note("attempt $attempt: the kill landed between two chunks");
}
is($code, 0, 'the CALL succeeds although groma-server was killed under a chunk') or diag($err);
like($err, qr/groma-server was terminated by signal 9 \(Killed\) while it had this request.*captioned again one at a time/s,
     'a warning says so') or diag($err);
is(rows_as_alone($killed_table), join(',', map { "$_:1" } 1 .. 24), 'every row is captioned once, as alone');
step('groma-server killed under a chunk');

# ---- a cancel while the call waits for the server to come back ends it, keeping what it committed
sql("UPDATE $killed_table SET caption = NULL WHERE id > 4");
my $q = start_query($node, 'cancelled_call', "CALL groma_caption_table('$killed_table', 'img', 'caption', chunk => 4)");
my $pid = status_row($node)->{pid};
ok(wait_until(60, sub { sql("SELECT count(*) FROM $killed_table WHERE caption IS NOT NULL") >= 8 }),
   'the second CALL is past its first chunk');
kill 'KILL', $pid;
my $kept = sql("SELECT count(*) FROM $killed_table WHERE caption IS NOT NULL");
ok(wait_until(10, sub { (status_row($node)->{state} // '') =~ /^(backoff|starting|loading)$/ }),
   'the server is on its way back') or diag(status_row($node)->{state});
sleep 0.5;
is(sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cancelled_call' AND state = 'active'"), 1,
   'the CALL waits for it');
is(sql("SELECT phase FROM groma_progress WHERE relid = '$killed_table'::regclass"), 'waiting for groma-server',
   'groma_progress shows it waiting for groma-server');
sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'cancelled_call'");
($code, $out, $err) = finish_query($q, 30);
ok($code != 0 && $err =~ /canceling statement due to user request/, 'a cancel ends the CALL while it waits')
  or diag($err);
is(sql("SELECT count(*) FROM $killed_table WHERE caption IS NOT NULL"), $kept, "keeping the chunks it committed ($kept rows)");
ok(wait_until(60, sub { (status_row($node)->{state} // '') eq 'ready' }), 'the server comes back');
($rc, $err) = caption_table($killed_table, 4);
is($rc, 0, 'and the next CALL captions the rest') or diag($err);
is(rows_as_alone($killed_table), join(',', map { $_ <= 4 ? "$_:1" : "$_:3" } 1 .. 24),
   'every row captioned once more (the trigger also counted the UPDATE that set them back to NULL)');
step('a cancel while waiting for the server');

# ---- rows answered before the loss are not captioned alone: with groma.bulk_in_flight = 1 the chunk's requests go
# one after another, so the three before the crashing image are answered when it crashes the server.  Their
# answers are thrown away with the error: they are sent again together, the crashing row alone
make_table('answered_first', @names[0, 1, 2], $crash);
$restarts = restarts();
my $log_at = -s $node->logfile;
{
    local $ENV{PGOPTIONS} = '-c groma.bulk_in_flight=1';
    ($rc, $err) = caption_table('answered_first', 4);
}
is($rc, 0, 'CALL groma_caption_table succeeds') or diag($err);
like($err, qr/a chunk of 4 row\(s\) of answered_first failed: groma-server was terminated by signal 11.*\nDETAIL:  Its rows are captioned again one at a time, each in model calls of its own, to find an image that causes it, but for the 3 of 4 answered before: those are sent again together/,
     'the warning says that 3 of the 4 rows were answered before, and are sent again together') or diag($err);
like($err, qr/the row of answered_first at ctid \(0,4\) is left NULL: captioned alone, it failed again: groma-server was terminated by signal 11/,
     'the crashing row is left NULL');
is(rows_as_alone('answered_first'), '1:1,2:1,3:1', 'the other rows are captioned once, as alone');
ok(wait_until(30, sub { restarts() - $restarts == 2 }), 'the server crashed twice: under the chunk, and on that image alone')
    or diag(restarts() - $restarts);
my $alone_runs = () = substr(PostgreSQL::Test::Utils::slurp_file($node->logfile), $log_at) =~ /runs alone: no other request joins/g;
is($alone_runs, 1, 'one request ran alone: the rows answered before were not captioned one at a time');
step('rows answered before the loss sent again together');

$node->stop;
done_testing();
