# groma-server's watchdog: a scheduler stuck in a model call (as a hung GPU
# would leave it) or holding the server's lock (a deadlock) makes the
# server exit with status 5 once --watchdog-s has passed, closing every
# connection that waits for an answer, so that no client waits for good;
# with --watchdog-s 0 (the default on the CPU) the same hang keeps the
# server running.  The hangs come from GROMA_SERVER_TEST_STALL=1 and a
# prompt (or an image's comment) asking for one; GROMA_SERVER_TEST_CRASH
# makes an image's comment crash the server, for the tests in PostgreSQL.  Sections that run the model allow 4 s, since a
# call of the tiny model can take a second on a busy 2-core machine.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;
use GromaProto;
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(time sleep);

use constant { OK => 0, HUNG => 5 };

my $model = "$root/test/golden/tiny-groma";
my $img = do { local $/; open(my $f, '<:raw', "$root/test/golden/images/synthetic_333x251.jpg") or die; <$f> };
my $dir = tempdir(CLEANUP => 1);
chmod 0700, $dir;
$ENV{GROMA_SERVER_TEST_STALL} = '1';

# Starts groma-server on the tiny model with extra arguments and waits until its model is ready; returns (pid, socket, log).
my $n_servers = 0;
sub start_ready {
    my (@args) = @_;
    $n_servers++;
    my ($sock, $log) = ("$dir/s$n_servers.sock", "$dir/s$n_servers.log");
    my $pid = spawn_server($server, $sock, $log, '--model', $model, '--device', 'cpu', @args);
    ok(wait_for_socket($sock, 20), "server $n_servers listens") or diag(slurp($log));
    my $until = time + 20;
    sleep 0.05 while (status_of($sock)->{state} // 0) != 2 && time < $until;
    return ($pid, $sock, $log);
}

# Polls code every 50 ms until it returns true or secs pass; returns whether it did.
sub wait_until_true {
    my ($code, $secs) = @_;
    my $until = time + $secs;
    while (time < $until) { return 1 if $code->(); sleep 0.05; }
    return 0;
}

# Waits until the server runs a request, then after $after seconds stops it with SIGSTOP for $stopped seconds.
sub stop_while_running {
    my ($pid, $sock, $after, $stopped) = @_;
    wait_until_true(sub { (status_of($sock)->{running} // 0) == 1 }, 10);
    sleep $after;
    kill 'STOP', $pid;
    sleep $stopped;
    kill 'CONT', $pid;
}

# Waits up to secs for what a connection gives: 'data', 'eof', 'reset' (ECONNRESET) or 'timeout'.
sub read_outcome {
    my ($c, $secs) = @_;
    my $rin = '';
    vec($rin, fileno($c), 1) = 1;
    return 'timeout' unless select(my $rout = $rin, undef, undef, $secs);
    my $got = sysread($c, my $buf, 65536);
    return defined $got ? ($got > 0 ? 'data' : 'eof') : $!{ECONNRESET} ? 'reset' : "error: $!";
}

# Returns the CPU seconds (user and system) process pid has used.
sub cpu_seconds {
    my ($pid) = @_;
    open(my $f, '<', "/proc/$pid/stat") or return 0;
    my @f = split(' ', (split(/\) /, scalar(<$f>), 2))[1]);
    return ($f[11] + $f[12]) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}

# Sends a GENERATE request for prompt on a new connection; returns the connection.
sub ask {
    my ($sock, $id, $prompt) = @_;
    return ask_image($sock, $id, $img, $prompt);
}

# Sends a GENERATE request for prompt about image on a new connection; returns the connection.
sub ask_image {
    my ($sock, $id, $image, $prompt) = @_;
    my $c = proto_connect($sock) or die "connect: $!";
    print $c generate_frame($id, $image, $prompt, 8);
    return $c;
}

# Returns the test image with a JPEG comment (COM segment) holding words, right after its SOI marker.
sub marked_jpeg {
    my ($words) = @_;
    return substr($img, 0, 2) . "\xff\xfe" . pack('n', 2 + length($words)) . $words . substr($img, 2);
}

# ---- a model call that never ends
my ($pid, $sock, $log) = start_ready('--watchdog-s', '4');
like(slurp($log), qr/watchdog: a model call, a hold of the lock or a stretch of the model load without loading weights longer than 4 s ends this process/,
     'the server says it');
my $r = read_reply(ask($sock, 1, 'What is this?'), 30);
is($r->{code}, OK, 'an ordinary request is answered with the watchdog on') or diag($r->{message});
my $stalled = ask($sock, 2, 'groma test: stall');
my $asked = time;
sleep 0.5;
my $queued = ask($sock, 3, 'What is this?');
my $st = status_of($sock);
my $until = time + 1;
($st = status_of($sock), sleep 0.05) while ($st->{queued} // 0) != 1 && time < $until;
is($st->{running}, 1, 'while the scheduler hangs, STATUS still answers (a probe cannot tell the hang)');
is($st->{queued}, 1, 'and shows the request queued behind it');
my $rc = wait_exit($pid, 15);
my $took = time - $asked;
is($rc, HUNG << 8, 'the server exits with status 5');
cmp_ok($took, '>=', 4, sprintf('not before --watchdog-s (%.2f s)', $took));
cmp_ok($took, '<', 7, sprintf('within a second or two after it (%.2f s)', $took));
ok(!defined read_reply($stalled, 5), 'the stalled request\'s connection is closed');
ok(!defined read_reply($queued, 5), 'and so is the queued one\'s');
like(slurp($log), qr/request 2 stalls the scheduler for good, as GROMA_SERVER_TEST_STALL allows/, 'the stall is logged');
like(slurp($log), qr/error: the vision and prompts of 1 GENERATE request\(s\) for [45]\.\d s, longer than --watchdog-s 4: groma-server is hung .* exits with status 5/,
    'the watchdog says which model call hung, and for how long');
like(slurp($log), qr/groma-server is hung \(a deadlock, or a CPU too busy to finish the work in time\)/,
     'naming the causes that fit a CPU server');

# ---- time the server spends stopped (SIGSTOP, a debugger) is not a hang
($pid, $sock, $log) = start_ready('--watchdog-s', '4');
my $long = proto_connect($sock) or die "connect: $!";
print $long generate_frame(1, $img, 'Describe the image in detail.', 3000);
stop_while_running($pid, $sock, 1.5, 5);
$r = read_reply($long, 90);
is($r->{code}, OK, 'a generation stopped for 5 s in the middle of its decode steps (--watchdog-s 4) is answered')
    or diag($r ? $r->{message} : 'no reply: ' . slurp($log));
ok(kill(0, $pid) && !defined wait_exit($pid, 0.1), 'and the server keeps running');
kill 'TERM', $pid;
wait_exit($pid, 10);

($pid, $sock, $log) = start_ready('--watchdog-s', '4');
$stalled = ask($sock, 1, 'groma test: stall');
stop_while_running($pid, $sock, 0.5, 5);
my $continued = time;
$rc = wait_exit($pid, 15);
$took = time - $continued;
is($rc, HUNG << 8, 'a stalled call is still ended when the stop is over');
cmp_ok($took, '>=', 1.5, sprintf('but the 5 s stop did not count: it ended %.2f s after SIGCONT', $took));

# ---- the lock held for good
($pid, $sock, $log) = start_ready('--watchdog-s', '1');
$stalled = ask($sock, 1, 'groma test: stall holding the lock');
$asked = time;
$rc = wait_exit($pid, 15);
$took = time - $asked;
is($rc, HUNG << 8, 'a lock held for good makes the server exit with status 5');
cmp_ok($took, '<', 4, sprintf('soon after --watchdog-s 1 (%.2f s)', $took));
ok(!defined read_reply($stalled, 5), 'closing the waiting connection');
like(slurp($log), qr/error: the server's lock has been held for [12]\.\d s, longer than --watchdog-s 1/, 'the watchdog names the lock');

# ---- the connections are hung up before the exit, which a GPU driver's teardown may hold up
{
    local $ENV{GROMA_SERVER_TEST_EXIT_DELAY} = '6000';
    ($pid, $sock, $log) = start_ready('--watchdog-s', '1');
    $stalled = ask($sock, 1, 'groma test: stall');
    $asked = time;
    is(read_outcome($stalled, 15), 'eof', 'a hung server whose exit takes 6 s ends the stalled connection');
    $took = time - $asked;
    cmp_ok($took, '<', 4, sprintf('after --watchdog-s 1, not after the slow exit (%.2f s)', $took));
    ok(!defined wait_exit($pid, 0.1), 'while the process has not exited yet');
    ok(!defined proto_connect($sock), 'and its socket takes no new connection meanwhile');
    my $cpu = cpu_seconds($pid);
    sleep 1;
    cmp_ok(cpu_seconds($pid) - $cpu, '<', 0.3, 'nor does it spin meanwhile (CPU seconds in one second)');
    is(wait_exit($pid, 15), HUNG << 8, 'then it exits with status 5');

    # while the lock is held the main thread cannot take new connections on: a connection it accepted and one
    # still in the listen queue have a request it never read, and get a reset (the request was not read), not an end
    ($pid, $sock, $log) = start_ready('--watchdog-s', '1');
    $stalled = ask($sock, 1, 'groma test: stall holding the lock');
    ok(wait_until_true(sub { slurp($log) =~ /request 1 stalls the scheduler for good holding the lock/ }, 10),
       'a request holds the lock');
    my @unread = map { ask($sock, 1 + $_, 'What is this?') } (1, 2);
    $asked = time;
    is(read_outcome($stalled, 15), 'eof', 'the connection whose request holds the lock ends');
    is(join(',', map { read_outcome($_, 5) } @unread), 'reset,reset', 'the two whose requests were never read are reset');
    cmp_ok(time - $asked, '<', 4, 'both before the slow exit');
    ok(!defined wait_exit($pid, 0.1), 'which is still to come');
    is(wait_exit($pid, 15), HUNG << 8, 'then it exits with status 5');
}

# ---- a model load that reads nothing (a GPU or a file system that no longer answers)
{
    local $ENV{GROMA_SERVER_TEST_LOAD_STALL} = '3600000';
    $n_servers++;
    ($sock, $log) = ("$dir/s$n_servers.sock", "$dir/s$n_servers.log");
    $pid = spawn_server($server, $sock, $log, '--model', $model, '--device', 'cpu', '--watchdog-s', '2');
    ok(wait_for_socket($sock, 20), 'a server whose model load stalls listens') or diag(slurp($log));
    my $started = time;
    is(status_of($sock)->{state}, 1, 'and says it is loading');
    $rc = wait_exit($pid, 15);
    $took = time - $started;
    is($rc, HUNG << 8, 'a load that reads no weights for --watchdog-s 2 ends the server with status 5');
    cmp_ok($took, '<', 5, sprintf('soon after the limit (%.2f s after it listened)', $took));
    like(slurp($log), qr/error: the model load has loaded no weights for [2-4]\.\d s, longer than --watchdog-s 2: groma-server is hung \(a file system that no longer answers, or a deadlock\)/,
         'saying that the load hung');
}
{
    local $ENV{GROMA_SERVER_TEST_LOAD_STALL} = 'elsewhere:3600000';
    ($pid, $sock, $log) = start_ready('--watchdog-s', '2');
    is(status_of($sock)->{state}, 2, 'a load stall asked of another server\'s name leaves this one alone');
    kill 'TERM', $pid;
    wait_exit($pid, 10);
    local $ENV{GROMA_SERVER_TEST_LOAD_STALL} = '1500';
    ($pid, $sock, $log) = start_ready('--watchdog-s', '4');
    is(status_of($sock)->{state}, 2, 'a load that pauses 1.5 s, under --watchdog-s 4, ends ready');
    like(slurp($log), qr/the model load waits 1500 ms before it reads anything/, 'the pause is logged');
    kill 'TERM', $pid;
    is(wait_exit($pid, 10), 0, 'and the server stops cleanly');
}
{
    local $ENV{GROMA_SERVER_TEST_LOAD_STALL} = '3600000';
    $n_servers++;
    ($sock, $log) = ("$dir/s$n_servers.sock", "$dir/s$n_servers.log");
    $pid = spawn_server($server, $sock, $log, '--model', $model, '--device', 'cpu', '--watchdog-s', '0');
    ok(wait_for_socket($sock, 20), 'without a watchdog a stalled load') or diag(slurp($log));
    ok(!defined wait_exit($pid, 3), 'keeps the server loading');
    my $stop = time;
    kill 'TERM', $pid;
    is(wait_exit($pid, 10), 0, 'and a stop ends it cleanly');
    cmp_ok(time - $stop, '<', 2, 'without waiting for the stall');
}

# ---- without the watchdog the same hang lasts
($pid, $sock, $log) = start_ready('--watchdog-s', '0');
$stalled = ask($sock, 1, 'groma test: stall');
ok(!defined wait_exit($pid, 3), 'with --watchdog-s 0 a hung server keeps running');
ok(!defined read_reply($stalled, 0.5), 'and its client keeps waiting');
kill 'KILL', $pid;
wait_exit($pid, 5);
like(slurp($log), qr/no watchdog: a hung model call is not detected/, 'and the server said it has no watchdog');

# ---- no watchdog by default on the CPU
($pid, $sock, $log) = start_ready();
like(slurp($log), qr/no watchdog/, 'a CPU server has no watchdog unless --watchdog-s sets one');
kill 'TERM', $pid;
wait_exit($pid, 10);

# ---- an image can ask for the stall too (a JPEG comment: a caption has no free prompt to carry it)
($pid, $sock, $log) = start_ready('--watchdog-s', '2');
$r = read_reply(ask_image($sock, 1, marked_jpeg('groma test: stall'), 'What is this?'), 30);
ok(!defined $r, 'an image carrying "groma test: stall" in a comment stalls the server until its watchdog ends it');
is(wait_exit($pid, 10), HUNG << 8, 'with status 5');
like(slurp($log), qr/request 1 stalls the scheduler for good, as GROMA_SERVER_TEST_STALL allows/, 'the stall is logged');

# ---- GROMA_SERVER_TEST_CRASH: an image that kills the server, as a decoder's bug could
{
    local $ENV{GROMA_SERVER_TEST_CRASH} = '1';
    ($pid, $sock, $log) = start_ready();
    $r = read_reply(ask_image($sock, 1, $img, 'What is this?'), 30);
    is($r->{code}, OK, 'with GROMA_SERVER_TEST_CRASH=1 an ordinary image is answered') or diag($r->{message});
    $r = read_reply(ask_image($sock, 2, marked_jpeg('groma test: crash'), 'What is this?'), 30);
    ok(!defined $r, 'an image carrying "groma test: crash" gets no answer');
    is((wait_exit($pid, 10) // -1) & 255, POSIX::SIGSEGV, 'the server dies of SIGSEGV, leaving no core file');
    like(slurp($log), qr/request 2 crashes groma-server, as GROMA_SERVER_TEST_CRASH allows/, 'the crash is logged');
    $ENV{GROMA_SERVER_TEST_CRASH} = 'server-9';
    ($pid, $sock, $log) = start_ready();
    $r = read_reply(ask_image($sock, 1, marked_jpeg('groma test: crash'), 'What is this?'), 30);
    is($r->{code}, OK, 'GROMA_SERVER_TEST_CRASH naming another server leaves this one alone') or diag($r->{message});
    kill 'TERM', $pid;
    wait_exit($pid, 10);
}

# ---- without GROMA_SERVER_TEST_STALL (and _CRASH) neither a prompt nor an image can stall or crash the server
delete $ENV{GROMA_SERVER_TEST_STALL};
($pid, $sock, $log) = start_ready('--watchdog-s', '4');
$r = read_reply(ask($sock, 1, 'groma test: stall'), 30);
is($r->{code}, OK, 'the stall prompt is an ordinary prompt without GROMA_SERVER_TEST_STALL=1') or diag($r->{message});
$r = read_reply(ask_image($sock, 2, marked_jpeg('groma test: stall'), 'What is this?'), 30);
is($r->{code}, OK, 'so is an image carrying the words') or diag($r->{message});
$r = read_reply(ask_image($sock, 3, marked_jpeg('groma test: crash'), 'What is this?'), 30);
is($r->{code}, OK, 'and one asking for a crash without GROMA_SERVER_TEST_CRASH') or diag($r->{message});
kill 'TERM', $pid;
is(wait_exit($pid, 10), 0, 'and the server stops cleanly');

# ---- a log pipe nobody reads drops lines instead of blocking the server (whose scheduler logs under its lock)
{
    pipe(my $log_r, my $log_w) or die "pipe: $!";
    fcntl($log_w, 1031, 4096) or diag("F_SETPIPE_SZ: $!");	# the smallest pipe: a few dozen lines fill it
    my $psock = "$dir/pipe.sock";
    my $ppid = fork() // die "fork: $!";
    if ($ppid == 0) {
        close($log_r);
        open(STDOUT, '>', '/dev/null') or die;
        open(STDERR, '>&', $log_w) or die;
        exec($server, '--serve', '--socket', $psock, '--model', $model, '--device', 'cpu', '--watchdog-s', '4') or die;
    }
    close($log_w);
    ok(wait_for_socket($psock, 20), 'a server whose log pipe is not read listens');
    my $until = time + 20;
    sleep 0.05 while (status_of($psock)->{state} // 0) != 2 && time < $until;
    my $answered = 0;
    my $c = proto_connect($psock);
    for my $k (1 .. 60) {
        print $c regions_frame($k, $img);
        my $pr = read_reply($c, 20);
        last unless $pr && $pr->{code} == OK;
        $answered++;
    }
    is($answered, 60, '60 requests (a log line each, 8 KB, into a pipe of 4 KB) are all answered');
    ok(!defined wait_exit($ppid, 0.1), 'and the server runs on: a full pipe is not a hang');
    my $flags = fcntl($log_r, 3, 0);	# F_GETFL
    fcntl($log_r, 4, $flags | 2048);	# F_SETFL O_NONBLOCK: drain what the pipe holds
    my $drained = '';
    1 while sysread($log_r, $drained, 65536, length($drained));
    print $c regions_frame(61, $img);
    read_reply($c, 20);
    sleep 0.2;
    my $after = '';
    1 while sysread($log_r, $after, 65536, length($after));
    like($after, qr/^warning: \d+ log lines were dropped: the log pipe was full$/m,
         'once the pipe has room the server says how many lines it dropped');
    like($after, qr/^info: .*regions/m, 'and logs again');
    kill 'TERM', $ppid;
    wait_exit($ppid, 10);
}

# ---- the beacon: the server keeps its model call's start and its watchdog's limit in shared memory (--beacon-fd)
{
    local $ENV{GROMA_SERVER_TEST_STALL} = '1';
    my $path = "$dir/beacon";
    open(my $bf, '+>', $path) or die "$path: $!";
    print $bf "\0" x 4096;
    $bf->flush;
    fcntl($bf, 2, 0) or die "F_SETFD: $!";	# the child inherits it
    my $bfd = fileno($bf);
    my ($bpid, $bsock, $blog) = start_ready('--watchdog-s', '30', '--beacon-fd', $bfd);
    # seq, watchdog_ms, call_since_ms, n_in_call, then (client pid, request id) pairs
    my $read_beacon = sub { my $b = slurp($path); my @f = unpack('Vl<q<l<', $b); return (@f[2, 1, 3], unpack('l<V', substr($b, 20, 8))); };
    my ($since, $limit, $n_in) = $read_beacon->();
    is($since, 0, 'the beacon shows no model call while the server is idle');
    is($limit, 30000, 'and the watchdog\'s limit in milliseconds');
    $r = read_reply(ask($bsock, 7, 'What is this?'), 30);
    is($r->{code}, OK, 'an ordinary request is answered');
    ($since, undef, $n_in) = $read_beacon->();
    is("$since/$n_in", '0/0', 'after it the beacon shows no call again');
    is(unpack('l<', substr(slurp($path), 20 + 256 * 8, 4)), 2, 'and the server\'s state: ready');
    my $bc = ask($bsock, 8, 'groma test: stall');
    ok(wait_until_true(sub { ($read_beacon->())[0] != 0 }, 10), 'during the stalled call it shows when the call began');
    my ($client_pid, $request_id);
    ($since, undef, $n_in, $client_pid, $request_id) = $read_beacon->();
    is("$n_in/$client_pid/$request_id", "1/$$/8", 'and the request it works for: its client\'s pid and its id');
    my $mono = Time::HiRes::clock_gettime(Time::HiRes::CLOCK_MONOTONIC()) * 1000;
    cmp_ok(abs($mono - $since), '<', 10000, 'on the monotonic clock, in milliseconds');
    my $lock_stuck = sub { unpack('q<', substr(slurp($path), 20 + 256 * 8 + 4, 8)) };
    kill 'KILL', $bpid;
    wait_exit($bpid, 5);
    ($bpid, $bsock, $blog) = start_ready('--watchdog-s', '30', '--beacon-fd', $bfd);
    $bc = ask($bsock, 9, 'groma test: stall holding the lock');
    my $asked = Time::HiRes::clock_gettime(Time::HiRes::CLOCK_MONOTONIC()) * 1000;
    ok(wait_until_true(sub { $lock_stuck->() != 0 }, 5), 'a lock held for good shows in the beacon within a few ticks');
    cmp_ok(abs($lock_stuck->() - $asked), '<', 2500, 'since about when it was taken, on the monotonic clock');
    kill 'KILL', $bpid;
    wait_exit($bpid, 5);
    close($bf);
}
# a beacon smaller than this server's (a launcher of another version) is left alone: the server runs without it
{
    my $path = "$dir/small-beacon";
    open(my $sf, '+>', $path) or die "$path: $!";
    print $sf "\0" x 64;
    $sf->flush;
    fcntl($sf, 2, 0) or die "F_SETFD: $!";
    my ($spid, $ssock, $slog) = start_ready('--beacon-fd', fileno($sf));
    is(status_of($ssock)->{state}, 2, 'a server given a beacon smaller than its own still loads and serves');
    like(slurp($slog), qr/--beacon-fd \d+ has 64 bytes, fewer than this groma-server's \d+ .*running without a beacon/,
         'saying it runs without one');
    is(slurp($path), "\0" x 64, 'and leaving that memory alone');
    kill 'TERM', $spid;
    wait_exit($spid, 10);
    close($sf);
}
for my $bad ('77', 'x') {
    my ($brc, undef, $err) = run_server('--serve', '--socket', "$dir/bad.sock", '--beacon-fd', $bad);
    is($brc, 2, "--beacon-fd '$bad' is a usage error");
    like($err, qr/--beacon-fd (77 is not an open file|needs an integer)/, 'saying why');
}

# ---- bad values
for my $bad ('-1', 'x', '86401', '') {
    my ($brc, undef, $err) = run_server('--serve', '--socket', "$dir/bad.sock", '--watchdog-s', $bad);
    is($brc, 2, "--watchdog-s '$bad' is a usage error");
    like($err, qr/--watchdog-s needs an integer in 0\.\.86400/, 'saying which values it takes');
}
done_testing();
