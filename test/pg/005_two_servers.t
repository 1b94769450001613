# groma.devices = '0,1' runs two groma-servers (here both on the CPU):
# groma_status() has a row for each, requests from several sessions, and
# one session's array call, are spread over both, and killing one (or
# stopping it with SIGSTOP) leaves the other serving.  A server whose
# model call hangs (GROMA_SERVER_TEST_STALL and a prompt asking for it)
# gets no new calls once the call has lasted 5 s, and the requests it holds
# move to the other server once it has lasted a tenth of its watchdog, and
# once the other server has loaded its model (GROMA_SERVER_TEST_LOAD_STALL
# makes server 1's load last 10 s); so do those of a suspended server.
# One whose lock stays held (a deadlock) gets no new calls once it has
# been held 5 s.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use Time::HiRes qw(time sleep);

$ENV{GROMA_SERVER_TEST_STALL} = 'server-0';	# server 0 alone stalls on the prompt; inherited through the postmaster
$ENV{GROMA_SERVER_TEST_LOAD_STALL} = 'server-1:10000';	# server 1 takes 10 s more to load its model, at each start
my $node = groma_node('two', "groma.devices = '0,1'\ngroma.threads = 1\ngroma.server_watchdog = '60s'", servers => 2);
step('cluster up, two servers ready');
my $img = image_sql();
my $rows = $node->safe_psql('postgres', 'SELECT server, state, device FROM groma_status() ORDER BY server');
is($rows, "0|ready|cpu\n1|ready|cpu", 'groma_status() has two ready servers');
my @pids = map { status_row($node, $_)->{pid} } (0, 1);
isnt($pids[0], $pids[1], "two processes ($pids[0], $pids[1])");

# several sessions at once
my $chat = "SET groma.max_new_tokens = 16; SELECT count(*) FROM generate_series(1, 3) g, "
  . "LATERAL (SELECT groma_chat($img, 'What is this? ' || g)) c";
my @q = map { start_query($node, "spread_$_", $chat) } (1 .. 4);
my $all_ok = 1;
for my $q (@q) {
    my ($rc, $out, $err) = finish_query($q, 120);
    $all_ok &&= defined $rc && $rc == 0 && $out =~ /^3$/m;
    diag($err) if $err ne '';
}
ok($all_ok, '4 sessions x 3 requests all answered');
my @served = map { status_row($node, $_)->{served} } (0, 1);
note("served: server 0 = $served[0], server 1 = $served[1]");
ok($served[0] > 0 && $served[1] > 0, "both servers served requests ($served[0] + $served[1])");
is($served[0] + $served[1], 12, 'every request was served once');
step('12 requests from 4 sessions');

# one array call spreads its connections over both servers: each opens to the one with fewer in flight
my $array = $node->safe_psql('postgres', "SET groma.max_new_tokens = 4; SET groma.bulk_in_flight = 4;
    SELECT cardinality(groma_caption_many(array_fill($img, ARRAY[8])))");
is($array, '8', 'an array call of 8 images is answered');
my @after = map { status_row($node, $_)->{served} } (0, 1);
note("the array call: server 0 served " . ($after[0] - $served[0]) . ", server 1 " . ($after[1] - $served[1]));
ok($after[0] > $served[0] && $after[1] > $served[1], 'both servers served some of its requests');
is($after[0] + $after[1] - $served[0] - $served[1], 8, 'each of its requests once');
@served = @after;
step('one array call over two servers');

# kill server 0: server 1 keeps serving
kill 'KILL', $pids[0];
my $t0 = time;
ok(wait_until(5, sub { status_row($node, 0)->{pid} ne $pids[0] }), 'the launcher noticed server 0 is gone');
my $r1 = status_row($node, 1);
is($r1->{pid}, $pids[1], 'server 1 still runs the same process');
is($r1->{state}, 'ready', 'server 1 is ready');
my $b = $node->background_psql('postgres');
$b->query_safe('SET groma.max_new_tokens = 16');
for my $i (1 .. 3) {
    is($b->query_safe("SELECT (groma_chat($img, 'What is this?')).text IS NOT NULL"), 't',
        "request $i after the kill is answered");
}
cmp_ok(status_row($node, 1)->{served}, '>', $served[1], 'server 1 served them (or some of them)');
step('server 0 killed, server 1 serving');
my $r0 = wait_until(15, sub { my $r = status_row($node, 0); $r->{state} eq 'ready' ? $r : undef });
ok($r0, 'server 0 is back');
is($r0->{restarts}, '1', 'server 0 restarted once') if $r0;
is($r0->{last_exit}, 'signal 9 (Killed)', 'its last exit was SIGKILL') if $r0;
is(status_row($node, 1)->{restarts}, '0', 'server 1 never restarted');
step('server 0 back');

# server 0 stopped by SIGSTOP: single and array calls go to server 1 and none waits on server 0
my $stopped = $r0->{pid};
kill 'STOP', $stopped;
ok(wait_until(5, sub { status_row($node, 0)->{state} eq 'suspended' }), 'server 0 is shown suspended');
my $served1 = status_row($node, 1)->{served};
$b->query_safe("SET statement_timeout = '30s'");
my $calls_ok = 1;
for my $i (1 .. 4) {
    $calls_ok &&= $b->query_safe("SELECT (groma_chat($img, 'What is this?')).text IS NOT NULL") eq 't';
}
ok($calls_ok, '4 single calls are answered while server 0 is suspended');
is($b->query_safe("SET groma.max_new_tokens = 4; SET groma.bulk_in_flight = 4;
    SELECT cardinality(groma_caption_many(array_fill($img, ARRAY[6])))"), '6', 'an array call of 6 images is answered');
is(status_row($node, 1)->{served} - $served1, 10, 'server 1 served all 10 requests');
kill 'CONT', $stopped;
my $back = wait_until(5, sub { my $r = status_row($node, 0); $r->{state} eq 'ready' ? $r : undef });
ok($back, 'server 0 is ready after SIGCONT');
is($back->{pid}, $stopped, 'the same process') if $back;
is($back->{served}, $r0->{served}, 'it served nothing while suspended') if $back;
step('server 0 suspended, server 1 serving');

# a server suspended while it holds a request: the request is sent again to the other server (single and array
# calls), and the suspended one drops it when it runs again (its client went away)
my $long = "SET groma.max_new_tokens = 3000; SET statement_timeout = '60s';";
for my $case (['a single call', "$long SELECT (groma_chat($img, 'Describe the image in detail.')).text IS NOT NULL", 't'],
              ['an array call', "$long SET groma.bulk_in_flight = 2;
                 SELECT count(*) FROM unnest(groma_chat_many(array_fill($img, ARRAY[2]), 'Describe the image in detail.'))",
               '2']) {
    my ($what, $sql, $want) = @$case;
    my @before = map { status_row($node, $_) } (0, 1);
    my $q = start_query($node, 'held', $sql);
    # (a reference: server 0 would read as false)
    my $busy = wait_until(20, sub { my @r = grep { status_row($node, $_)->{running} eq '1' } (0, 1); @r ? [$r[0]] : undef });
    my $held = $busy ? $busy->[0] : 0;
    ok($busy, "$what: server $held runs its request");
    my $held_pid = $before[$held]->{pid};
    kill 'STOP', $held_pid;
    my ($rc, $out, $err) = finish_query($q, 90);
    is($rc, 0, "$what: answered while server $held is suspended") or diag($err);
    like($out, qr/^$want$/m, "$what: every answer");
    kill 'CONT', $held_pid;
    ok(wait_until(10, sub { status_row($node, $held)->{cancelled} > $before[$held]->{cancelled} }),
       "$what: server $held, running again, dropped the request whose client went away");
    ok(wait_until(10, sub { status_row($node, $held)->{state} eq 'ready' }), "$what: server $held is ready again");
}
# a single call moved off a suspended server goes back to it when it runs again and the other one is suspended
{
    my $q = start_query($node, 'twice', "$long SELECT (groma_chat($img, 'Describe the image in detail.')).text IS NOT NULL");
    my $busy = wait_until(20, sub { my @r = grep { status_row($node, $_)->{running} eq '1' } (0, 1); @r ? [$r[0]] : undef });
    my $first = $busy ? $busy->[0] : 0;
    my $second = 1 - $first;
    my @p = map { status_row($node, $_)->{pid} } (0, 1);
    my $served_first = status_row($node, $first)->{served};
    kill 'STOP', $p[$first];
    ok(wait_until(20, sub { status_row($node, $second)->{running} eq '1' }), "the request moved to server $second");
    kill 'STOP', $p[$second];
    kill 'CONT', $p[$first];
    my ($rc, $out, $err) = finish_query($q, 90);
    is("$rc/$out", "0/t\n", "server $second suspended in turn, it is answered") or diag($err);
    kill 'CONT', $p[$second];
    is(status_row($node, $first)->{served} - $served_first, 1, "by server $first");
    ok(wait_until(10, sub { status_row($node, $second)->{state} eq 'ready' }), "server $second is ready again");
}
step('a server suspended while it holds requests');

# both servers suspended: after the grace a call fails naming both
{
    my @p = map { status_row($node, $_)->{pid} } (0, 1);
    kill 'STOP', @p;
    ok(wait_until(5, sub { status_row($node, 0)->{state} eq 'suspended' && status_row($node, 1)->{state} eq 'suspended' }),
       'both servers are shown suspended');
    my ($rc, $out, $err) = $node->psql('postgres', "SET statement_timeout = '20s'; SELECT groma_chat($img, 'What is this?')",
        extra_params => ['-v', 'VERBOSITY=verbose']);
    like($err, qr/57P03: groma-servers 0 \(pid $p[0]\), 1 \(pid $p[1]\) are suspended/, 'a call fails naming both (57P03)');
    like($err, qr/HINT:  Each runs again after kill -CONT with its pid/, 'its hint says how to resume them');
    kill 'CONT', @p;
    ok(wait_until(10, sub { status_row($node, 0)->{state} eq 'ready' && status_row($node, 1)->{state} eq 'ready' }),
       'both are ready again after SIGCONT');
}
step('both servers suspended');

# server 0's model call hangs (GROMA_SERVER_TEST_STALL=server-0 stalls server 0 alone): once the call has lasted
# 5 s new calls go to server 1, and once it has lasted a tenth of its watchdog (60 s here) the requests queued
# behind it move to server 1 too; the stalled request itself stays (it may be what hangs the server)
{
    my @before = map { status_row($node, $_) } (0, 1);
    # calls with the stalling prompt until one runs on server 0 (server 1 answers those sent to it)
    my @stalls;
    for my $k (1 .. 12) {
        push @stalls, start_query($node, "stall_$k", "SET statement_timeout = '40s'; SET groma.max_new_tokens = 8; "
            . "SELECT (groma_chat($img, 'groma test: stall')).text IS NOT NULL");
        last if wait_until(2, sub { status_row($node, 0)->{running} eq '1' });
    }
    ok(status_row($node, 0)->{running} eq '1', 'a stalling request runs on server 0');
    # within the first 5 s, requests still go to both servers: an array call's (one at least on server 0), six sessions'
    my @held = (start_query($node, 'held_array', "SET statement_timeout = '40s'; SET groma.max_new_tokens = 8; "
        . "SET groma.bulk_in_flight = 4; SELECT cardinality(groma_caption_many(array_fill($img, ARRAY[6])))"));
    sleep 0.3;
    push @held, map { start_query($node, "held_$_", "SET statement_timeout = '40s'; SET groma.max_new_tokens = 8; "
        . "SELECT (groma_chat($img, 'What is this? $_')).text IS NOT NULL") } (1 .. 6);
    my $waiting = wait_until(3, sub { my $r = status_row($node, 0); $r->{queue_depth} >= 2 ? $r : undef });
    ok($waiting, 'requests wait behind the hung call on server 0') or diag(explain(status_row($node, 0)));
    ok($waiting && ($waiting->{model_call_s} eq '' || $waiting->{model_call_s} < 5),
       'sent before the call had lasted 5 s') or diag(explain($waiting));
    my $hung_row = wait_until(10, sub { my $r = status_row($node, 0); $r->{model_call_s} ne '' && $r->{model_call_s} >= 5 ? $r : undef });
    ok($hung_row, 'groma_status() shows server 0 in one model call for 5 s') or diag(explain(status_row($node, 0)));
    # new calls go to the other server
    my ($rc, $out, $err) = $node->psql('postgres',
        "SET statement_timeout = '30s'; SET groma.max_new_tokens = 8; SELECT (groma_chat($img, 'And now?')).text IS NOT NULL");
    is("$rc/$out", '0/t', 'a new single call is answered') or diag($err);
    ($rc, $out, $err) = $node->psql('postgres', "SET statement_timeout = '30s'; SET groma.max_new_tokens = 8; "
        . "SET groma.bulk_in_flight = 4; SELECT cardinality(groma_caption_many(array_fill($img, ARRAY[3])))");
    is("$rc/$out", '0/3', 'and a new array call') or diag($err);
    # the held ones move after 6 s (a tenth of the 60 s watchdog)
    ok(all_answered(\@held, 60, 't', '6'), 'the requests queued behind the hung call are answered by server 1');
    my $active = $node->safe_psql('postgres',
        "SELECT string_agg(application_name, ',') FROM pg_stat_activity WHERE application_name LIKE 'stall_%' AND state = 'active'");
    is($active, 'stall_' . scalar(@stalls), 'the stalling request in the hung call still waits there (any other was answered)');
    my @after = map { status_row($node, $_) } (0, 1);
    is($after[0]->{served} - $before[0]->{served}, 0, 'server 0 served nothing');
    is($after[1]->{served} - $before[1]->{served}, (@stalls - 1) + 6 + 6 + 1 + 3, 'server 1 served every other request');
    cmp_ok($after[0]->{cancelled} - $before[0]->{cancelled}, '>=', 2, 'server 0 dropped those it held (their clients left)');
    is($after[0]->{queue_depth}, '0', "none waits behind the hung call any more");
    my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
    like($log, qr/groma-server 0 \(pid $hung_row->{pid}\) has been in one model call for 5\.\d s: new calls go to the other servers/,
         'the launcher logs the long call');
    like($log, qr/groma-server 0 \(pid $hung_row->{pid}\) has been in one model call for \d+ s: (a request|\d+ requests) of an array call waiting behind it (is|are) sent to another server/,
         'a session logs moving its array call\'s request');
    like($log, qr/groma-server 0 \(pid $hung_row->{pid}\) has been in one model call for \d+ s: a request waiting behind it is sent to another server/,
         'and one its single call\'s');
    # stopped with SIGSTOP (a debugger looking at the hang), server 0 still keeps the request in its hung call
    kill 'STOP', $hung_row->{pid};
    sleep 4.5;
    my $other = status_row($node, 1);
    ok($other->{model_call_s} eq '' || $other->{model_call_s} < 1, 'stopping the hung server moves no request into server 1\'s hands')
        or diag(explain($other));
    is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stall_" . scalar(@stalls)
        . "' AND state = 'active'"), '1', 'the stalled request still waits on server 0');
    kill 'CONT', $hung_row->{pid};
    kill 'KILL', $hung_row->{pid};
    stalls_ended(\@stalls, 'the one in the hung call fails when server 0 is killed');
    ok(wait_until(20, sub { my $r = status_row($node, 0); $r->{state} eq 'ready' && $r->{pid} ne $hung_row->{pid} }),
       'server 0 is ready again once killed');
    is(status_row($node, 0)->{model_call_s}, '', 'with no model call in progress');
}
step('a server in a hung model call');

# server 0 hangs while server 1 restarts and loads its model (10 s): requests waiting behind the hung call move
# only once server 1 is ready, and are answered there (before, a request that met server 1 loading never went
# back to it, and failed with the hung server)
{
    my $loading_pid = status_row($node, 1)->{pid};
    kill 'KILL', $loading_pid;
    my $loading = wait_until(10, sub { my $r = status_row($node, 1); $r->{state} eq 'loading' && $r->{pid} ne $loading_pid ? $r : undef });
    ok($loading, 'server 1, killed, is loading again') or diag(explain(status_row($node, 1)));
    my $stall = start_query($node, 'stall_again', "SET statement_timeout = '60s'; SET groma.max_new_tokens = 8; "
        . "SELECT (groma_chat($img, 'groma test: stall')).text IS NOT NULL");
    ok(wait_until(10, sub { status_row($node, 0)->{running} eq '1' }), 'a stalling request runs on server 0, the ready one');
    my @held = (start_query($node, 'behind_array', "SET statement_timeout = '60s'; SET groma.max_new_tokens = 8; "
        . "SET groma.bulk_in_flight = 2; SELECT cardinality(groma_caption_many(array_fill($img, ARRAY[2])))"),
        map { start_query($node, "behind_$_", "SET statement_timeout = '60s'; SET groma.max_new_tokens = 8; "
            . "SELECT (groma_chat($img, 'Who is there? $_')).text IS NOT NULL") } (1 .. 3));
    ok(wait_until(5, sub { status_row($node, 0)->{queue_depth} >= 3 }), 'requests wait behind the hung call')
        or diag(explain(status_row($node, 0)));
    # with the launcher stopped for a while its looks go stale: calls no longer know server 1 is loading, try it
    # first, hear "loading" and go to server 0; they take server 1 back once the launcher has seen it ready
    my $launcher = parent_pid(status_row($node, 0)->{pid});
    kill 'STOP', $launcher;
    sleep 1.5;
    push @held, start_query($node, 'stale_array', "SET statement_timeout = '60s'; SET groma.max_new_tokens = 8; "
        . "SET groma.bulk_in_flight = 2; SELECT cardinality(groma_caption_many(array_fill($img, ARRAY[2])))"),
        start_query($node, 'stale_single', "SET statement_timeout = '60s'; SET groma.max_new_tokens = 8; "
            . "SELECT (groma_chat($img, 'Who else is there?')).text IS NOT NULL");
    my $queued = wait_until(8, sub { status_row($node, 0)->{queue_depth} >= 6 });
    kill 'CONT', $launcher;
    ok($queued, 'calls sent while the launcher was stopped met server 1 loading and wait on server 0 too')
        or diag(explain(status_row($node, 0)));
    my $hung = wait_until(15, sub { my $r = status_row($node, 0); $r->{model_call_s} ne '' && $r->{model_call_s} >= 6.5 ? $r : undef });
    ok($hung, 'server 0 has been in its call past a tenth of its watchdog');
    is(status_row($node, 1)->{state}, 'loading', 'while server 1 still loads');
    cmp_ok(status_row($node, 0)->{queue_depth}, '>=', 6, 'so the requests stay where they are');
    ok(wait_until(20, sub { status_row($node, 1)->{state} eq 'ready' }), 'server 1 is ready after its 10 s load');
    ok(all_answered(\@held, 40, 't', '2'), 'then the requests behind the hung call are answered by server 1');
    is(status_row($node, 0)->{queue_depth}, '0', 'and none waits on server 0');
    kill 'KILL', $hung->{pid} if $hung;
    my ($src, $sout, $serr) = finish_query($stall, 20);
    like($serr, qr/terminated by signal 9/, 'the stalled request fails when server 0 is killed');
    ok(wait_until(20, sub { my $r = status_row($node, 0); $r->{state} eq 'ready' && $r->{pid} ne ($hung ? $hung->{pid} : 0) }),
       'server 0 is ready again');
}
step('a hung server beside one that is loading');

# server 0 holds its lock for good (a deadlock; GROMA_SERVER_TEST_STALL's other prompt): its watchdog shows that in
# the beacon, and once the lock has been held 5 s new calls go to server 1 (before, they were spread over both, and
# those sent to server 0 waited for its watchdog)
{
    my $pid0 = status_row($node, 0)->{pid};
    my $log_at = -s $node->logfile;
    my $log_since = sub { my $l = PostgreSQL::Test::Utils::slurp_file($node->logfile); substr($l, $log_at) };
    my @stalls;
    for my $k (1 .. 12) {
        push @stalls, start_query($node, "lock_$k", "SET statement_timeout = '60s'; SET groma.max_new_tokens = 8; "
            . "SELECT (groma_chat($img, 'groma test: stall holding the lock')).text IS NOT NULL");
        last if wait_until(2, sub { $log_since->() =~ /groma-server 0: warning: request \d+ stalls the scheduler for good holding the lock/ });
    }
    like($log_since->(), qr/groma-server 0: warning: request \d+ stalls the scheduler for good holding the lock/,
         'a request holds server 0\'s lock for good');
    ok(wait_until(10, sub { $log_since->() =~ /groma-server 0 \(pid $pid0\) has held its lock for 5\.\d s \(a deadlock\?\): new calls go to the other servers/ }),
       'the launcher logs the lock held for 5 s');
    my $started = time;
    my @calls = map { start_query($node, "after_lock_$_", "SET statement_timeout = '60s'; SET groma.max_new_tokens = 8; "
        . "SELECT (groma_chat($img, 'And who is here? $_')).text IS NOT NULL") } (1 .. 6);
    push @calls, start_query($node, 'after_lock_array', "SET statement_timeout = '60s'; SET groma.max_new_tokens = 8; "
        . "SET groma.bulk_in_flight = 3; SELECT cardinality(groma_caption_many(array_fill($img, ARRAY[3])))");
    ok(all_answered(\@calls, 40, 't', '3'), 'six sessions\' calls and an array call sent meanwhile are all answered');
    cmp_ok(time - $started, '<', 30, sprintf('by server 1, in %.1f s (server 0\'s watchdog is 60 s)', time - $started));
    kill 'KILL', $pid0;
    stalls_ended(\@stalls, 'the one holding the lock fails when server 0 is killed');
    ok(wait_until(20, sub { my $r = status_row($node, 0); $r->{state} eq 'ready' && $r->{pid} ne $pid0 }),
       'server 0 is ready again');
}
step('a server that holds its lock for good');

# server 0 suspended while server 1 loads: the requests server 0 holds stay there (before, they moved to server 1
# after the 2 s grace, heard "loading" and failed with 57P03), and are answered once it runs again
{
    my $loading_pid = status_row($node, 1)->{pid};
    kill 'KILL', $loading_pid;
    ok(wait_until(10, sub { my $r = status_row($node, 1); $r->{state} eq 'loading' && $r->{pid} ne $loading_pid }),
       'server 1, killed again, is loading');
    my $pid0 = status_row($node, 0)->{pid};
    my @long = map { start_query($node, "long_$_", "SET statement_timeout = '60s'; SET groma.max_new_tokens = 2000; "
        . "SELECT (groma_chat($img, 'Describe the image in detail. $_')).text IS NOT NULL") } (1, 2);
    ok(wait_until(10, sub { status_row($node, 0)->{running} eq '2' }), 'two long requests run on server 0');
    kill 'STOP', $pid0;
    sleep 3.5;
    my $one = status_row($node, 1);
    my $waiting = $node->safe_psql('postgres',
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'long_%' AND state = 'active'");
    kill 'CONT', $pid0;
    is($one->{state}, 'loading', 'server 1 was still loading while server 0 was suspended for 3.5 s');
    is($waiting, '2', 'and both requests were still waiting then');
    ok(all_answered(\@long, 60, 't'), 'the requests server 0 held waited for it and were answered');
    ok(wait_until(20, sub { status_row($node, 1)->{state} eq 'ready' }), 'server 1 ends its load');
}
step('a suspended server beside one that is loading');
$b->quit;
my @last_pids = map { status_row($node, $_)->{pid} } (0, 1);
$node->stop('fast');
ok(!proc_alive($last_pids[0]) && !proc_alive($last_pids[1]), 'both servers gone after pg_ctl stop -m fast');
done_testing();

# Returns the parent of process pid (a groma-server's is the launcher).
sub parent_pid {
    my ($pid) = @_;
    open(my $f, '<', "/proc/$pid/stat") or die "/proc/$pid/stat: $!";
    my ($ppid) = (scalar(<$f>) =~ /\) \S (\d+)/);
    return $ppid;
}

# Waits up to secs for each background query; returns true when every one succeeded with one of the outputs given.
sub all_answered {
    my ($queries, $secs, @outputs) = @_;
    my $all_ok = 1;
    for my $q (@$queries) {
        my ($qrc, $qout, $qerr) = finish_query($q, $secs);
        $all_ok &&= defined $qrc && $qrc == 0 && grep { $qout eq "$_\n" } @outputs;
        diag($qerr) if $qerr ne '';
    }
    return $all_ok;
}

# Checks the calls with a stalling prompt once server 0 is killed: those server 1 took were answered, the last (the one
# that stalled server 0) failed with the kill.
sub stalls_ended {
    my ($stalls, $what) = @_;
    for my $q (@$stalls[0 .. $#$stalls - 1]) {
        my ($src, $sout, $serr) = finish_query($q, 20);
        is("$src/$sout", "0/t\n", 'a stalling request sent to server 1 was answered') or diag($serr);
    }
    my ($src, $sout, $serr) = finish_query($stalls->[-1], 20);
    like($serr, qr/terminated by signal 9/, $what);
}
