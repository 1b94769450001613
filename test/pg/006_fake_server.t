# The backend's handling of replies the tiny model never produces, with
# test/pg/fake_server.pl standing in for groma-server (groma.server_path;
# groma.model_path picks its behaviour): grounded answers become
# groma_answer values with box[] groundings, and a full queue, a model that
# is loading or failed, another protocol version, garbage and a server exit
# each give their own SQLSTATE while the session keeps working.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use Time::HiRes qw(time sleep);

my $fake = "$FindBin::Bin/fake_server.pl";
my $node = PostgreSQL::Test::Cluster->new('fake');
$node->init;
$node->append_conf('postgresql.conf', join("\n",
    "shared_preload_libraries = 'groma'",
    "groma.server_path = '$fake'",
    "groma.model_path = 'groundings'"));
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION groma');
ok(wait_until(20, sub { status_row($node)->{state} eq 'ready' }), 'the fake server is ready');
step('cluster up with the fake server');
my $img = image_sql();

# Switches the fake server's behaviour and waits until it reports the state.
sub mode {
    my ($m, $state) = @_;
    $node->safe_psql('postgres', "ALTER SYSTEM SET groma.model_path = '$m'");
    $node->safe_psql('postgres', 'SELECT pg_reload_conf()');
    return wait_until(20, sub { my $r = status_row($node); $r->{model_path} eq $m && $r->{state} eq $state });
}

# Runs groma_chat in a fresh session (after the SQL in set, if any); returns its stderr (verbose).
sub chat_error {
    my ($set) = @_;
    my ($rc, $out, $err) = $node->psql('postgres', ($set // '') . "SELECT groma_chat($img, 'What is this?')",
        extra_params => ['-v', 'VERBOSITY=verbose']);
    return $err;
}

# groundings
my $answer = $node->safe_psql('postgres', qq{
    SELECT a.text, g.phrase, g.start, g.stop, g.boxes::text, pg_typeof(g.boxes)
    FROM (SELECT (groma_chat($img, 'What is this?')).*) a, unnest(a.groundings) g ORDER BY g.start});
is($answer, "A man irons clothes on a taxi.|A man|0|5|{(110,220),(10,20)}|box[]\n"
      . "A man irons clothes on a taxi.|a taxi|23|29|{(3,4),(1,2);(7.5,8),(5,6)}|box[]",
    'groma_chat returns the text and its groundings, boxes with their corners in order');
is($node->safe_psql('postgres', "SELECT substr(a.text, g.start + 1, g.stop - g.start) FROM "
      . "(SELECT (groma_chat($img, 'x')).*) a, unnest(a.groundings) g ORDER BY g.start"),
    "A man\na taxi", 'start/stop are character offsets of the phrases in the text');
is($node->safe_psql('postgres', "SELECT groma_chat($img, 'x', ARRAY[box '((1,2),(3,4))'])::text IS NOT NULL"),
    't', 'refer boxes are accepted');
step('grounded answers');

# a full queue
ok(mode('busy', 'ready'), "mode 'busy'");
like(chat_error(), qr/53000: groma-server's request queue is full.*HINT:  Raise groma.max_queue/s,
    'a full queue gives 53000 with a hint to raise groma.max_queue');

# loading
ok(mode('loading', 'loading'), "mode 'loading': groma_status() says loading");
is($node->safe_psql('postgres', 'SELECT load_progress FROM groma_status()'), '100/400 MB',
    'groma_status() shows the load progress');
is($node->safe_psql('postgres', 'SELECT weights FROM groma_status()'), 'int8',
    "groma_status() shows the server's weight type");
is($node->safe_psql('postgres', 'SELECT cancelled, busy FROM groma_status()'), '7|3',
    "groma_status() shows the server's cancelled and busy counts");
like(chat_error(), qr/57P03: groma-server is loading its model.*DETAIL:  100 of 400 MB are loaded/s,
    'a request while loading gives 57P03 with the progress');
my $t0 = time;
like(chat_error("SET groma.restart_wait = '1s'; "), qr/57P03: groma-server is loading its model.*DETAIL:  100 of 400 MB are loaded/s,
    'with groma.restart_wait, a request to a server that stays loading gives the same 57P03');
my $waited = time - $t0;
cmp_ok($waited, '>=', 1, 'once it has waited groma.restart_wait');
cmp_ok($waited, '<', 5, 'and not much longer');

# failed
ok(mode('failed', 'failed'), "mode 'failed'");
like(chat_error(), qr/55000: groma-server could not load its model.*DETAIL:  groma-server reported: the model failed to load: fake reason/s,
    'a failed model gives 55000 with the reason');
$t0 = time;
like(chat_error("SET groma.restart_wait = '10s'; "), qr/55000: groma-server could not load its model/s,
    'with groma.restart_wait, a failed model gives 55000 too');
cmp_ok(time - $t0, '<', 3, 'at once: a failed load is not waited for');

# stopping: a request a shutdown answered says the server is stopping (it said "cannot run models now" when the
# status request that followed met the closed socket)
ok(mode('stopping', 'ready'), "mode 'stopping'");
like(chat_error(), qr/57P03: groma-server is stopping.*DETAIL:  groma-server reported: groma-server is shutting down.*HINT:  It stops for a configuration change, after which the groma launcher starts it again, or because PostgreSQL is shutting down/s,
    'a request answered "shutting down" gives 57P03 saying the server is stopping');
step('busy, loading, failed, stopping');

# protocol violations: the session keeps working after each
ok(mode('version9', 'running'), "mode 'version9' (STATUS does not parse: the registry's state shows)");
my $b = $node->background_psql('postgres', on_error_stop => 0);
$b->query_safe("\\set VERBOSITY verbose");
$b->query("SELECT groma_ping()");
like($b->{stderr}, qr/08P01: groma-server speaks protocol version 9, groma.so 6/, 'another protocol version gives 08P01');
$b->{stderr} = '';
# an image of 1.1 MB: the server answers the header and closes while the rest is still being sent
my $big = "'\\xffd8'::bytea || (SELECT string_agg(decode('fffeffff' || repeat('41', 65533), 'hex'), ''::bytea)
    FROM generate_series(1, 17)) || substring($img from 3)";
$b->query("SELECT groma_chat($big, 'What is this?')");
like($b->{stderr}, qr/08P01: groma-server speaks protocol version 9, groma.so 6/,
    'so does a large request the server answered before reading it (it said the server closed the connection)');
$b->{stderr} = '';
$b->query("SELECT groma_chat_many(array_fill($big, ARRAY[3]), 'What is this?')");
like($b->{stderr}, qr/08P01: groma-server speaks protocol version 9, groma.so 6/, 'and an array call of them');
$b->{stderr} = '';
is($b->query_safe('SELECT 1'), '1', 'the session keeps working');
ok(mode('garbage', 'running'), "mode 'garbage'");
$b->query("SELECT groma_ping()");
like($b->{stderr}, qr/08P01: groma-server sent a malformed frame/, 'garbage gives 08P01');
$b->{stderr} = '';
is($b->query_safe('SELECT 1'), '1', 'the session keeps working');
step('protocol violations');

# a server that exits while it runs the request
ok(mode('exit3', 'ready'), "mode 'exit3'");
my $t0 = time;
$b->query("SELECT groma_chat($img, 'What is this?')");
like($b->{stderr}, qr/58000: groma-server exited with code 3 while it had this request \(queued or running\)/,
    'an exit during the request gives 58000 with the exit code');
like($b->{stderr}, qr/DETAIL:  Its last message was: error: fake server exits in the middle of a request/,
    "the detail quotes the server's last line");
$b->{stderr} = '';
cmp_ok(time - $t0, '<', 2, 'the error comes at once');
$b->query("SELECT groma_chat($img, 'What is this?')");
like($b->{stderr}, qr/57P03: groma-server is restarting after it exited \(exit 3\)/,
    'the next request, during the backoff, gives 57P03 naming the exit');
$b->{stderr} = '';
is($b->query_safe('SELECT 1'), '1', 'the session keeps working');
step('server exit');

# the last mode-independent paths
ok(mode('groundings', 'ready'), 'back to grounded answers');
like($b->query_safe("SELECT (groma_chat($img, 'x')).text"), qr/^A man irons/, 'the same session gets answers again');
$b->quit;

# two servers, server 0 still loading: an array call spreads its connections over both, and those that server 0
# answers "loading" move to server 1 with their requests (the call failed with 57P03)
# Sets groma.model_path to a mode of both servers of groma.devices = '0,1' and waits until both report it
# (server 0 in the mode named before '-0', server 1 in groundings).
sub mode_of_two {
    my ($m) = @_;
    (my $first = $m) =~ s/-0$//;
    $node->safe_psql('postgres', "ALTER SYSTEM SET groma.devices = '0,1'; ALTER SYSTEM SET groma.model_path = '$m'");
    $node->safe_psql('postgres', 'SELECT pg_reload_conf()');
    return wait_until(30, sub { status_row($node, 0)->{model_path} eq $first
                                && status_row($node, 1)->{model_path} eq 'groundings'
                                && status_row($node, 1)->{state} eq 'ready' });
}
ok(mode_of_two('loading-0') && status_row($node, 0)->{state} eq 'loading',
   "groma.devices = '0,1': server 0 is loading, server 1 ready");
my $spread = $node->safe_psql('postgres', "SET groma.bulk_in_flight = 4;
    SELECT count(*) FILTER (WHERE a.text LIKE 'A man irons%') || '/' || count(*)
    FROM unnest(groma_chat_many(array_fill($img, ARRAY[6]), 'What is this?')) a");
is($spread, '6/6', 'an array call beside a loading server gets every answer from the other');

# server 0 goes away before reading each request (its connections reset, as a killed server's are before its
# socket closes): single and array calls go to server 1 (they failed with 58000 "while it had this request")
ok(mode_of_two('reset-0'), 'server 0 now resets every request unread');
# Runs four single calls of the image expression in one session, then an array call of 6; returns (the single
# calls answered, their stderr, 'answered/asked' of the array call).
sub single_and_array {
    my ($image) = @_;
    # (one session takes the two servers in turn while neither has a request in flight: some of the four go to 0)
    my ($rc, $answered, $err) = $node->psql('postgres', "SELECT count(*) FROM generate_series(1, 4) g,
        LATERAL (SELECT groma_chat($image, 'What is this? ' || g) AS a) c WHERE (c.a).text LIKE 'A man irons%'");
    my $array = $node->safe_psql('postgres', "SET groma.bulk_in_flight = 4;
        SELECT count(*) FILTER (WHERE a.text LIKE 'A man irons%') || '/' || count(*)
        FROM unnest(groma_chat_many(array_fill($image, ARRAY[6]), 'What is this?')) a");
    return ($answered, $err, $array);
}
my ($answered, $aerr, $array_answers) = single_and_array($img);
is($answered, '4', 'four single calls in one session are all answered (those sent to server 0 sent again to server 1)')
  or diag($aerr);
is($array_answers, '6/6', 'an array call beside it gets every answer from server 1');
# the image of 1.1 MB: server 0 closes while the request is still being sent (the send fails, not the read)
($answered, $aerr, $array_answers) = single_and_array($big);
is($answered, '4', 'four single calls of a 1.1 MB image are all answered (a failed send moves them too)')
  or diag($aerr);
is($array_answers, '6/6', 'and so is an array call of 6 of them');

# server 0's queue is always full: requests it refuses as busy are sent again to server 1 (they waited for
# room on server 0 until groma.request_timeout)
ok(mode_of_two('busy-0'), 'server 0 now refuses every request as busy');
my $arc;
($arc, $answered, $aerr) = $node->psql('postgres', "SET groma.request_timeout = '10s';
    SELECT count(*) FROM generate_series(1, 4) g,
    LATERAL (SELECT groma_chat($img, 'What is this? ' || g) AS a) c WHERE (c.a).text LIKE 'A man irons%'");
is($answered, '4', 'four single calls in one session are all answered') or diag($aerr);
my $t_busy = time;
($arc, $spread, $aerr) = $node->psql('postgres', "SET groma.request_timeout = '10s'; SET groma.bulk_in_flight = 4;
    SELECT count(*) FILTER (WHERE a.text LIKE 'A man irons%') || '/' || count(*)
    FROM unnest(groma_chat_many(array_fill($img, ARRAY[40]), 'What is this?')) a");
is($spread, '40/40', 'an array call of 40 images gets every answer from server 1') or diag($aerr);
cmp_ok(time - $t_busy, '<', 8, sprintf('within %.1f s', time - $t_busy));
$node->safe_psql('postgres', "ALTER SYSTEM RESET groma.devices; ALTER SYSTEM SET groma.model_path = 'groundings'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(30, sub { status_row($node)->{state} eq 'ready' && $node->safe_psql('postgres',
   'SELECT count(*) FROM groma_status()') eq '1' }), 'back to one server');
step('array and single calls beside a loading or resetting server');

# one server resetting every request unread: 57P03, it never had the request
ok(mode('reset', 'ready'), "mode 'reset'");
like(chat_error(), qr/57P03: groma-server closed the connection before it read this request/,
     'a request the only server reset unread gives 57P03, not 58000');
ok(mode('groundings', 'ready'), 'back to grounded answers');
step('a server resetting requests unread');

# the only server ends before it reads a chunk's requests: groma_caption_table waits for its restart and sends
# them again (no chunk failed, since the server never had them), where a plain array call fails with 57P03
$node->safe_psql('postgres', "CREATE TABLE fake_photos (id int PRIMARY KEY, img bytea, caption text);
    INSERT INTO fake_photos SELECT g, $img FROM generate_series(1, 3) g");
ok(mode('exit-unread', 'ready'), "mode 'exit-unread'");
like(($node->psql('postgres', "SELECT groma_caption_many(array_fill($img, ARRAY[3]))"))[2],
     qr/groma-server (is restarting after it exited \(exit 3\)|closed the connection before it read this request)/,
     'an array call whose requests the only server never read fails with 57P03');
unlink(glob($node->data_dir . '/groma/*.exited'));
ok(wait_until(30, sub { (status_row($node)->{state} // '') eq 'ready' }), 'the server is back, in the same mode');
my $restarts = status_row($node)->{restarts};
my ($crc, $cout, $cerr) = $node->psql('postgres', "CALL groma_caption_table('fake_photos', 'img', 'caption')");
is($crc, 0, 'CALL groma_caption_table succeeds though the server ended before it read the chunk') or diag($cerr);
unlike($cerr, qr/a chunk of/, 'no chunk failed: the requests it never read were sent again once it was back');
is($node->safe_psql('postgres', "SELECT count(*) FROM fake_photos WHERE caption LIKE 'A man irons%'"), 3,
   'every row has its answer');
is(status_row($node)->{restarts} - $restarts, 1, 'the server ended once');
ok(mode('groundings', 'ready'), 'back to grounded answers');
step('a server ending before it reads a chunk');

# a program that exits at once, writing nothing: groma_status().last_stderr is that process's last line, so it is
# empty (it showed the previous server's "stopped" line, as if the new one had said it)
like(status_row($node)->{last_stderr}, qr/\S/, 'the fake server has logged lines');
$node->safe_psql('postgres', "ALTER SYSTEM SET groma.server_path = '/bin/false'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(20, sub { my $r = status_row($node); $r->{state} eq 'backoff' && $r->{last_exit} eq 'exit 1' }),
   'groma.server_path = /bin/false: the slot backs off after exit 1');
is(status_row($node)->{last_stderr}, '', 'and last_stderr is empty: /bin/false said nothing');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET groma.server_path');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
step('a server that says nothing');
$node->stop('fast');
done_testing();
