# groma-server crashing (SIGSEGV) in the middle of a request: the session
# that sent it gets an ERROR naming the signal, PostgreSQL is not reset
# (postmaster start time and other sessions unchanged), the launcher
# restarts the server (restarts = 1) and the next request succeeds.  Then
# the server is stopped with SIGSTOP: calls fail at once saying it is
# suspended, and reach it again after SIGCONT.  Last, a server whose model
# call hangs (GROMA_SERVER_TEST_STALL and a prompt asking for it) is ended
# by its watchdog after groma.server_watchdog: the calls it held fail at
# once, naming the hang, also while its exit is held up (as a GPU driver's
# teardown may; GROMA_SERVER_TEST_EXIT_DELAY makes it 15 s), their
# transaction rolls back, and the restarted server answers.  A reload
# during such an exit kills the server, and its last exit still names the
# hang.
#
# With one server, every request it holds dies with it, so the session that
# must be unaffected (B) runs plain SQL while A's request crashes.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use Time::HiRes qw(time sleep);

$ENV{GROMA_SERVER_TEST_STALL} = '1';	# the postmaster, and so groma-server, inherit it
$ENV{GROMA_SERVER_TEST_EXIT_DELAY} = '15000';	# a hung server takes 15 s to exit once it has hung up
my $node = groma_node('crash');
step('cluster up, model ready');
my $img = image_sql();

my $pm_start = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my $b = $node->background_psql('postgres');
my $b_pid = $b->query_safe('SELECT pg_backend_pid()');
my $before = status_row($node);
is($before->{restarts}, '0', 'no restarts before the crash');

# A: a long generation (3000 tokens take seconds on the tiny model)
my $a = start_query($node, 'crash_a',
    "SET groma.max_new_tokens = 3000; SELECT (groma_chat($img, 'Describe the image in detail.')).text IS NOT NULL");
my $running = wait_until(20, sub { status_row($node)->{running} eq '1' });
ok($running, "A's request is running in groma-server");
step("A's request running");

my $server_pid = status_row($node)->{pid};
ok($server_pid > 0, "groma-server pid $server_pid from groma_status()");
my $killed_at = time;
kill 'SEGV', $server_pid;
my ($rc, $out, $err, $ended) = finish_query($a, 10);
step('SIGSEGV sent, A answered');
ok(defined $rc && $rc != 0, 'A fails');
like($err, qr/58000: groma-server was terminated by signal 11 \(Segmentation fault\) while it had this request \(queued or running\)/,
    'A gets an ERROR naming the signal, SQLSTATE 58000');
note("A's error: $err");
cmp_ok($ended - $killed_at, '<', 2.5, sprintf('A got its error %.3f s after the kill', $ended - $killed_at));

# B and the cluster were not touched
is($b->query_safe('SELECT pg_backend_pid()'), $b_pid, "B's backend is the same process");
is($b->query_safe('SELECT 1'), '1', 'B keeps working');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $pm_start,
    'postmaster start time unchanged (no crash restart of PostgreSQL)');

# the launcher restarts the server; a new request succeeds within 10 s of the kill
my $restarted = wait_until(10, sub { my $r = status_row($node); $r->{state} eq 'ready' && $r->{pid} ne $server_pid });
ok($restarted, 'groma-server is ready again with a new pid');
step('server restarted and ready');
my $after = status_row($node);
is($after->{restarts}, '1', 'groma_status() shows restarts = 1');
is($after->{last_exit}, 'signal 11 (Segmentation fault)', "last_exit says how it ended");
my $ok = $b->query_safe("SET groma.max_new_tokens = 16; SELECT (groma_chat($img, 'What is this?')).text IS NOT NULL");
is($ok, 't', 'a new groma_chat succeeds in B');
my $recovered = time - $killed_at;
cmp_ok($recovered, '<', 10, sprintf('a request succeeded %.3f s after the kill', $recovered));
step('new request answered');

# a server stopped by SIGSTOP is shown suspended; a call made meanwhile waits out a short stop (2 s at most) ...
kill 'STOP', $after->{pid};
ok(wait_until(5, sub { status_row($node)->{state} eq 'suspended' }), 'groma_status() shows the stopped server as suspended');
my $short = start_query($node, 'short_stop', "SELECT (groma_chat($img, 'What is this?')).text IS NOT NULL");
sleep 0.5;
kill 'CONT', $after->{pid};
my ($shrc, $shout, $sherr) = finish_query($short, 30);
is("$shrc/$shout", "0/t\n", 'a call made while it was stopped for half a second is answered') or diag($sherr);
# ... and after 2 s it fails (57P03) instead of waiting for a timeout
kill 'STOP', $after->{pid};
ok(wait_until(5, sub { status_row($node)->{state} eq 'suspended' }), 'groma_status() shows the stopped server as suspended');
my $asked_at = time;
my ($src, $sout, $serr) = $node->psql('postgres',
    "SET statement_timeout = '20s'; SELECT (groma_chat($img, 'What is this?')).text IS NOT NULL",
    extra_params => ['-v', 'VERBOSITY=verbose']);
my $took = time - $asked_at;
like($serr, qr/57P03: groma-server 0 \(pid $after->{pid}\) is suspended/, 'a call fails with 57P03 naming the suspended server');
like($serr, qr/It runs again after kill -CONT $after->{pid}, or when the debugger holding it lets it go/, 'its hint says how to resume it');
cmp_ok($took, '<', 5, sprintf('the call failed %.3f s after it was made, without waiting for a timeout', $took));
like($serr, qr/DETAIL:  Its process has been stopped by a signal or held by a debugger for [23] s\./,
     'once the server had been suspended for 2 s');
kill 'CONT', $after->{pid};
ok(wait_until(5, sub { status_row($node)->{state} eq 'ready' }), 'after SIGCONT it is ready again');
is($b->query_safe("SET groma.max_new_tokens = 16; SELECT (groma_chat($img, 'What is this?')).text IS NOT NULL"), 't',
    'and answers a call');
is(status_row($node)->{pid}, $after->{pid}, 'the same process (not restarted)');
step('suspended and resumed');

# a hung model call: the watchdog ends the server (a new groma.server_watchdog restarts it first)
$node->append_conf('postgresql.conf', "groma.server_watchdog = '4s'");	# a tiny model call can take 1 s on a busy CI machine
$node->reload;
ok(wait_until(20, sub { my $r = status_row($node); $r->{state} eq 'ready' && $r->{pid} ne $after->{pid} }),
   'a new groma.server_watchdog restarts the server');
my $watched = status_row($node);
$node->safe_psql('postgres', 'CREATE TABLE captions (id int PRIMARY KEY, caption text); INSERT INTO captions VALUES (1, NULL)');
my $hung = start_query($node, 'hung',
    "BEGIN; UPDATE captions SET caption = (groma_chat($img, 'groma test: stall')).text; COMMIT;");
ok(wait_until(5, sub { status_row($node)->{running} eq '1' }), 'the stalling request runs');
my $stalled_at = time;
my $behind = start_query($node, 'behind', "SELECT (groma_chat($img, 'What is this?')).text IS NOT NULL");
ok(wait_until(5, sub { status_row($node)->{queue_depth} eq '1' }), 'another session\'s request waits behind it');
my ($hrc, $hout, $herr, $hended) = finish_query($hung, 20);
my ($qrc, $qout, $qerr) = finish_query($behind, 20);
is(status_row($node)->{state}, 'hung', 'groma_status() shows the server hung while its exit is under way');
my ($nrc, $nout, $nerr) = $node->psql('postgres', "SELECT groma_chat($img, 'What is this?')",
    extra_params => ['-v', 'VERBOSITY=verbose']);
like($nerr, qr/57P03: groma-server 0 \(pid $watched->{pid}\) hung, and its watchdog is ending it/,
     'a new call meanwhile is told so at once');
ok(proc_alive($watched->{pid}), 'the hung process has not exited yet');
step('hung server ended by its watchdog');
like($herr, qr/58000: groma-server hung while it had this request \(queued or running\), and its watchdog ended it/,
     'the hung call fails naming the hang (58000)');
like($herr, qr/error: the vision and prompts of 1 GENERATE request\(s\) for [45]\.\d s, longer than --watchdog-s 4/,
     'its detail is the watchdog\'s message');
like($herr, qr/groma\.server_watchdog is how long one model call, or a hold of the server's lock, may last/,
     'its hint names the setting');
like($qerr, qr/58000: groma-server hung while it had this request/, 'the request queued behind it fails the same way');
my $waited = $hended - $stalled_at;
cmp_ok($waited, '<', 8, sprintf('%.2f s after the stall began, not at a timeout nor after the slow exit', $waited));
is($node->safe_psql('postgres', 'SELECT coalesce(caption, \'(null)\') FROM captions'), '(null)',
   'the failed UPDATE rolled back');
ok(wait_until(40, sub { my $r = status_row($node); $r->{state} eq 'ready' && $r->{pid} ne $watched->{pid} }),
   'the launcher restarts the server once it has exited');
my $restarted_row = status_row($node);
is($restarted_row->{restarts}, $watched->{restarts} + 1, 'restarts counts it');
is($restarted_row->{last_exit}, 'exit 5: hung, ended by its watchdog', 'last_exit names the hang');
$node->safe_psql('postgres', "SET groma.max_new_tokens = 16; UPDATE captions SET caption = (groma_chat($img, 'What is this?')).text");
is($node->safe_psql('postgres', 'SELECT caption IS NOT NULL FROM captions'), 't', 'the same UPDATE succeeds afterwards');
step('restarted after the hang');

# a reload while a hung server's exit is held up: the launcher kills it at once, and its last exit names the hang
my $second = status_row($node);
my $stall2 = start_query($node, 'hung_again', "SELECT groma_chat($img, 'groma test: stall')");
ok(wait_until(15, sub { status_row($node)->{state} eq 'hung' }), 'a second stall: the server is hung and exiting');
my $hung_seen = time;
$node->safe_psql('postgres', "ALTER SYSTEM SET groma.max_queue = 63; SELECT pg_reload_conf()");
ok(wait_until(30, sub { my $r = status_row($node); $r->{state} eq 'ready' && $r->{pid} ne $second->{pid} }),
   'a reload meanwhile replaces it');
cmp_ok(time - $hung_seen, '<', 5, sprintf('in %.1f s: a server known hung is killed at once, not after 5 s', time - $hung_seen));
unlike(PostgreSQL::Test::Utils::slurp_file($node->logfile), qr/pid $second->{pid}\) did not stop within/,
       'without waiting for it to stop');
is(status_row($node)->{last_exit}, 'signal 9 (Killed) while its watchdog ended it as hung',
   'last_exit: killed, as hung, not as a server that would not stop');
my (undef, undef, $serr2) = finish_query($stall2, 10);
like($serr2, qr/58000: groma-server hung while it had this request/, 'its request failed naming the hang');
step('a reload during a slow exit');

$b->quit;
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
unlike($log, qr/server process .* was terminated by signal|terminating any other active server processes/,
    'no PostgreSQL process crashed');
like($log, qr/groma-server 0 \(pid $server_pid\) ended: signal 11/, 'the launcher logged the crash');
like($log, qr/groma-server 0 \(pid $watched->{pid}\) ended: exit 5: hung, ended by its watchdog/, 'and the hang');
like($log, qr/groma-server 0 \(pid $after->{pid}\) is suspended .*\n(?s:.*)groma-server 0 \(pid $after->{pid}\) runs again/,
    'the launcher logged the suspension and the resumption');
$node->stop('fast');
ok(!proc_alive($restarted_row->{pid}), 'no groma-server left after pg_ctl stop -m fast');
step('stopped');
done_testing();
