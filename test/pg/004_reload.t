# Changing groma.model_path and reloading restarts groma-server on the new
# model; a path that does not load leaves the server in state 'failed' with
# the reason in groma_status(), the cluster running and model functions
# failing with 55000; an empty path runs image checks only; memory settings
# too large fail the load with a hint naming them; a storm of reloads stops
# every server through its handler.  A server stopped by SIGSTOP is resumed
# so that it stops cleanly; one that does not stop (a hung scheduler, from
# GROMA_SERVER_TEST_STALL) is killed after 5 s.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);

$ENV{GROMA_SERVER_TEST_STALL} = '1';	# the postmaster, and so groma-server, inherit it
my $node = groma_node('reload');
step('cluster up, model ready');
my $img = image_sql();
$node->safe_psql('postgres', q{
CREATE FUNCTION sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$});
my $chat = "SELECT sqlstate_of(\$q\$SET groma.max_new_tokens = 16; SELECT groma_chat($img, 'What is this?')\$q\$)";
is($node->safe_psql('postgres', $chat), 'ok', 'groma_chat works on the first model');
my $first = status_row($node);

# Reloads with groma.model_path = path and waits for the server to settle in a state.
sub reload_model {
    my ($path, $state) = @_;
    $node->safe_psql('postgres', "ALTER SYSTEM SET groma.model_path = '$path'");
    $node->safe_psql('postgres', 'SELECT pg_reload_conf()');
    return wait_until(30, sub { my $r = status_row($node); $r->{model_path} eq $path && $r->{state} eq $state });
}

# a copy of the model in another directory
my $copy = tempdir(CLEANUP => 1) . '/tiny-copy';
system('cp', '-r', $model, $copy) == 0 or die "cp: $!";
ok(reload_model($copy, 'ready'), 'after reload groma-server runs on the copy');
my $second = status_row($node);
is($second->{model_path}, $copy, 'groma_status().model_path is the new path');
isnt($second->{pid}, $first->{pid}, 'a new groma-server process');
is($second->{restarts}, '1', 'restarts = 1 after the reload');
is($node->safe_psql('postgres', $chat), 'ok', 'groma_chat works on the copy');
step('reload onto a copy of the model');

# a path that does not hold a model
ok(reload_model('/nonexistent/groma-model', 'failed'), "an invalid path leaves groma-server in state 'failed'");
my $failed = status_row($node);
like($failed->{last_stderr}, qr{/nonexistent/groma-model|failed to load}, "the reason is in groma_status(): $failed->{last_stderr}");
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the cluster keeps running');
is($node->safe_psql('postgres', $chat), '55000', 'groma_chat fails with SQLSTATE 55000');
my ($rc, $out, $err) = $node->psql('postgres', "SET groma.max_new_tokens = 16; SELECT groma_chat($img, 'What is this?')",
    extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/groma-server could not load its model/, 'the error says the model did not load');
like($err, qr{DETAIL:.*/nonexistent/groma-model}, 'the detail gives the reason');
note($err);
# the path names the server's files: like groma.server_path, it is shown to roles with pg_read_all_settings only
$node->safe_psql('postgres', "CREATE ROLE plain LOGIN; CREATE TABLE one_image AS SELECT $img AS img;
                               GRANT SELECT ON one_image TO plain");
my $as_plain = sub { return $node->psql('postgres', $_[0], extra_params => ['-U', 'plain', '-v', 'VERBOSITY=verbose']) };
(undef, undef, $err) = $as_plain->('SHOW groma.model_path');
like($err, qr/42501: must be superuser or have privileges of pg_read_all_settings to examine "groma.model_path"/,
     'a plain role cannot SHOW groma.model_path');
is(($as_plain->('SELECT model_path IS NULL FROM groma_status()'))[1], 't', 'nor read groma_status().model_path');
(undef, undef, $err) = $as_plain->("SET groma.max_new_tokens = 16; SELECT groma_chat(img, 'What is this?') FROM one_image");
like($err, qr/groma-server could not load its model/, 'it is told the model did not load');
unlike($err, qr{/nonexistent}, 'without the path');
like($err, qr/DETAIL:  The reason names files of the server: it is shown to roles with the privileges of pg_read_all_settings/,
     'the detail says who may see the reason');
$node->safe_psql('postgres', 'GRANT pg_read_all_settings TO plain');
(undef, undef, $err) = $as_plain->("SET groma.max_new_tokens = 16; SELECT groma_chat(img, 'What is this?') FROM one_image");
like($err, qr{DETAIL:.*/nonexistent/groma-model}, 'a role with pg_read_all_settings reads it');
is(($as_plain->('SELECT model_path FROM groma_status()'))[1], '/nonexistent/groma-model', 'in groma_status() too');
is($node->safe_psql('postgres', "SELECT groma_image_validate($img)"), 't', 'image checks still work');
step('reload onto an invalid path');

# no model at all
ok(reload_model('', 'no_model'), "an empty groma.model_path gives state 'no_model'");
($rc, $out, $err) = $node->psql('postgres', "SELECT groma_chat($img, 'What is this?')",
    extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/55000: groma-server has no model/, 'groma_chat says there is no model (55000)');
like($err, qr/HINT:  Set groma.model_path to a model directory and reload the configuration/, 'with a hint');
is($node->safe_psql('postgres', "SELECT groma_image_validate($img)"), 't', 'image checks work without a model');
cmp_ok($node->safe_psql('postgres', 'SELECT groma_ping()'), '>', 0, 'groma_ping() works without a model');
step('reload without a model');

# a reload that changes nothing the server uses does not restart it
my $pid = status_row($node)->{pid};
$node->safe_psql('postgres', "ALTER SYSTEM SET work_mem = '8MB'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
sleep 0.5;
is(status_row($node)->{pid}, $pid, 'an unrelated reload keeps the same groma-server');

# back to the original model
ok(reload_model($model, 'ready'), 'back on the original model');
is($node->safe_psql('postgres', $chat), 'ok', 'groma_chat works again');
is(status_row($node)->{restarts}, '4', 'one restart per configuration change');
step('back to the original model');

# groma.weights = int8 restarts groma-server with the language model's matrices in 8 bits, on the CPU too
$pid = status_row($node)->{pid};
$node->safe_psql('postgres', "ALTER SYSTEM SET groma.weights = 'int8'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(30, sub { my $r = status_row($node); $r->{pid} ne $pid && $r->{state} eq 'ready' }),
    'groma.weights = int8 restarts groma-server, which gets ready');
like(PostgreSQL::Test::Utils::slurp_file($node->logfile), qr/loading model \S+ on cpu \(--weights int8\)/,
    'the new server loads int8 weights on the CPU');
is($node->safe_psql('postgres', $chat), 'ok', 'groma_chat works on int8 weights');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET groma.weights');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(30, sub { my $r = status_row($node); $r->{restarts} eq '6' && $r->{state} eq 'ready' }),
    'resetting groma.weights restarts it once more');
step('groma.weights = int8');

# groma.kv_first_tokens reaches groma-server's command line: a reload restarts it with the new first room, and
# an answer whose cache grows from room for 4 new tokens is the one the whole cache gave
my $answer = "SET groma.max_new_tokens = 40; SELECT (groma_chat($img, 'What is this?')).text";
my $whole = $node->safe_psql('postgres', $answer);
$node->safe_psql('postgres', 'ALTER SYSTEM SET groma.kv_first_tokens = 4');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(30, sub { my $r = status_row($node); $r->{restarts} eq '7' && $r->{state} eq 'ready' }),
    'groma.kv_first_tokens = 4 restarts groma-server, which gets ready');
ok(wait_until(10, sub { PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ /a cache starts with room for 4 new tokens/ }),
    'the new server starts each KV cache with room for 4 new tokens');
is($node->safe_psql('postgres', $answer), $whole, 'groma_chat gives the same answer with caches that grow');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET groma.kv_first_tokens');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
step('groma.kv_first_tokens = 4');

# memory settings too large for this machine fail the load; the hint names the setting, not groma.model_path
for my $setting (['groma.kv_cache_mb', 'Lower groma.kv_cache_mb'], ['groma.activation_mb', 'Lower groma.activation_mb']) {
    my ($name, $hint) = @$setting;
    $pid = status_row($node)->{pid};
    $node->safe_psql('postgres', "ALTER SYSTEM SET $name = 1048576");
    $node->safe_psql('postgres', 'SELECT pg_reload_conf()');
    ok(wait_until(30, sub { my $r = status_row($node); $r->{pid} ne $pid && $r->{state} eq 'failed' }),
       "$name = 1 TB: the model fails to load");
    ($rc, $out, $err) = $node->psql('postgres', "SELECT groma_chat($img, 'What is this?')");
    like($err, qr/could not load its model.*HINT:  \Q$hint\E/s, "the hint says to lower $name") or diag($err);
    $node->safe_psql('postgres', "ALTER SYSTEM RESET $name");
    $node->safe_psql('postgres', 'SELECT pg_reload_conf()');
    ok(wait_until(30, sub { status_row($node)->{state} eq 'ready' }), 'reset, the model loads again');
}
step('memory settings too large');

# a reload storm stops each server soon after the launcher started it: it stops through its handler, never by
# SIGTERM's default action before the handler is set (groma_status() then showed 'signal 15' as if it crashed)
for my $i (1 .. 8) {
    $node->safe_psql('postgres', 'ALTER SYSTEM SET groma.max_batch = ' . ($i % 2 ? 4 : 16));
    $node->safe_psql('postgres', 'SELECT pg_reload_conf()');
    sleep 0.3;
}
$node->safe_psql('postgres', 'ALTER SYSTEM RESET groma.max_batch');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(30, sub { status_row($node)->{state} eq 'ready' }), 'after a storm of reloads the server gets ready');
unlike(PostgreSQL::Test::Utils::slurp_file($node->logfile), qr/groma-server \d+ \(pid \d+\) ended: signal 15/,
       'no server was ended by SIGTERM before its handler was set');
step('a storm of reloads');
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
unlike($log, qr/did not stop within/, 'every server stopped on SIGTERM');

# groma.max_decodes reaches groma-server as --max-decodes (a reload restarts it)
my $before_decodes = status_row($node)->{pid};
$node->safe_psql('postgres', 'ALTER SYSTEM SET groma.max_decodes = 2');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(30, sub { my $r = status_row($node); $r->{state} eq 'ready' && $r->{pid} ne $before_decodes }),
   'groma.max_decodes = 2 restarts groma-server');
like(PostgreSQL::Test::Utils::slurp_file($node->logfile), qr/max decodes 2\)/, 'which decodes 2 images at once');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET groma.max_decodes');

# a reload while groma-server is SIGSTOPped: the launcher resumes it with its SIGTERM, and it stops cleanly
my $frozen = status_row($node)->{pid};
kill 'STOP', $frozen;
ok(wait_until(5, sub { status_row($node)->{state} eq 'suspended' }), 'the SIGSTOPped server shows as suspended');
my $reloaded_at = time;
$node->safe_psql('postgres', 'ALTER SYSTEM SET groma.max_batch = 3');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(30, sub { my $r = status_row($node); $r->{state} eq 'ready' && $r->{pid} ne $frozen }),
   'after a reload a new server gets ready');
my $replaced = time - $reloaded_at;
cmp_ok($replaced, '<', 4.5, sprintf('%.2f s after the reload: the stopped one was not waited for 5 s', $replaced));
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
like($log, qr/groma-server 0 \(pid $frozen\) is stopped by a signal: resuming it so that it can stop/,
     'the launcher says it resumed the stopped one');
like($log, qr/groma-server 0 \(pid $frozen\) ended: exit 0/, 'which exited cleanly');
unlike($log, qr/pid $frozen\) did not stop within/, 'without being killed');

# a reload while the scheduler hangs: while the launcher waits for it to exit (5 s, then SIGKILL),
# groma_status() shows it 'stopping' with its pid (it showed 'stopped' and no pid while the process was there)
my $hung = status_row($node)->{pid};
my $stall = start_query($node, 'stall', "SELECT groma_chat($img, 'groma test: stall')");
ok(wait_until(5, sub { status_row($node)->{running} eq '1' }), 'a request hangs the scheduler');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET groma.max_batch');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(4, sub { my $r = status_row($node); $r->{state} eq 'stopping' && $r->{pid} eq $hung }),
   "a hung server being replaced shows as 'stopping' with its pid");
($rc, $out, $err) = $node->psql('postgres', "SELECT groma_chat($img, 'What is this?')", extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/57P03: groma-server is stopping/, 'a request meanwhile is told it is stopping');
ok(wait_until(30, sub { my $r = status_row($node); $r->{state} eq 'ready' && $r->{pid} ne $hung }),
   'then it is killed and a new server gets ready');
like(PostgreSQL::Test::Utils::slurp_file($node->logfile), qr/pid $hung\) did not stop within 5000 ms: killing it/,
     'the launcher says it killed the hung one');
($rc, $out, $err) = finish_query($stall, 10);
like($err, qr/57P03: groma-server was killed while it had this request \(queued or running\): it had not stopped 5 s after it was asked to/,
     'the hung request fails, saying the launcher killed the server for not stopping');
like($err, qr/HINT:  It stops for a configuration change/, 'with the hint for a stopping server');
is(status_row($node)->{last_exit}, 'signal 9 (Killed), sent by the launcher: it had not stopped 5 s after SIGTERM',
   'groma_status() tells that kill from a crash');
is($node->safe_psql('postgres', $chat), 'ok', 'and the new server answers');
step('a reload of a stopped server and of a hung one');
$node->stop('fast');
done_testing();
