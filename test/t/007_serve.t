# groma-server --serve on the bundled tiny model, spoken to over its socket
# without PostgreSQL: answers equal the command line's, bad frames close
# only their own connection, the queue refuses past its limit, cancels and
# vanished clients free the scheduler, other users are refused, SIGTERM
# (also with connections not yet accepted, and during the model load) and
# the launcher's pipe stop it cleanly, and running out of file descriptors or threads, or reaching
# --max-connections, makes new connections wait without the server spinning.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;
use GromaProto;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use IO::Select;
use Socket qw(SOCK_STREAM);

use Time::HiRes qw(time sleep);
use JSON::PP qw(decode_json);
use Encode qw(decode);
use POSIX ();

use constant { OK => 0, NOT_JPEG => 2, CANCELLED => 12, BUSY => 13, UNAVAILABLE => 14 };

my $model = "$root/test/golden/tiny-groma";
my $img = do { local $/; open(my $f, '<:raw', "$root/test/golden/images/synthetic_333x251.jpg") or die; <$f> };
my $caption = '[grounding]Please briefly summarize the content of this image.';
my $dir = tempdir(CLEANUP => 1);
chmod 0700, $dir;

# Starts groma-server --serve with extra arguments; returns (pid, socket path, log path).
my $n_servers = 0;
sub start_server {
    my (@args) = @_;
    $n_servers++;
    my $sock = "$dir/s$n_servers.sock";
    my $log = "$dir/s$n_servers.log";
    my $pid = spawn_server($server, $sock, $log, @args);
    ok(wait_for_socket($sock, 20), "server $n_servers listens on its socket") or diag(slurp($log));
    return ($pid, $sock, $log);
}

# Waits for a server's model to be ready and its descriptors to settle, then limits its descriptors (prlimit)
# so that exactly $free descriptor numbers are free below the limit (the limit bounds numbers, not counts);
# returns the limit.
sub limit_descriptors {
    my ($pid, $sock, $free) = @_;
    my $until = time + 20;
    wait_ready($sock);
    # the descriptors open once the status connections are closed (the list settles)
    my %open = map { m{/(\d+)$} ? ($1 => 1) : () } settled_listing("/proc/$pid/fd/*", $until);
    my ($limit, $found) = (0, 0);
    while ($found < $free || $open{$limit}) { $found++ unless $open{$limit}; $limit++; }
    system('prlimit', '--pid', $pid, "--nofile=$limit:$limit") == 0 or diag('prlimit failed');
    return $limit;
}

# Waits until the paths a glob lists stop changing for 0.3 s, or the deadline passes; returns them.
sub settled_listing {
    my ($pattern, $until) = @_;
    my ($now, $last) = ('', 'none');
    my @paths;
    while ($now ne $last && time < $until) {
        $last = $now;
        sleep 0.3;
        @paths = sort glob($pattern);
        $now = join(',', @paths);
    }
    return @paths;
}

# Waits up to 20 s for a server's model to be ready.
sub wait_ready {
    my ($sock) = @_;
    my $until = time + 20;
    my $st = status_of($sock);
    while (($st->{state} // 0) != 2 && time < $until) { sleep 0.05; $st = status_of($sock); }
}

# The CPU time a process has used so far, in clock ticks (user + system).
sub cpu_ticks {
    my ($pid) = @_;
    my @f = split ' ', (slurp("/proc/$pid/stat") =~ s/^.*\) //sr);
    return $f[11] + $f[12];
}

# Connects and pings until a ping is not answered within a second; returns (the served connections, the waiting one).
sub connect_until_one_waits {
    my ($sock, $id) = @_;
    my (@served, $waiting);
    for my $k (1 .. 20) {
        my $c = proto_connect($sock);
        print $c ping_frame($id + $k);
        if (read_reply($c, 1)) { push @served, $c; next; }
        $waiting = $c;
        last;
    }
    return (\@served, $waiting);
}

# ---- answers, and what needs no model
my ($pid, $sock, $log) = start_server('--model', $model, '--device', 'cpu', '--max-queue', '1', '--max-batch', '1', '--log-level', 'info');
my $c = proto_connect($sock);
my $t0 = time;
print $c ping_frame(1);
my $r = read_reply($c, 10);
is($r->{code}, OK, sprintf('ping answers (%.2f ms)', 1000 * (time - $t0)));
is($r->{id}, 1, 'with the request id');

print $c validate_frame(2, $img);
$r = read_reply($c, 10);
is($r->{code}, OK, 'a good JPEG validates');
is_deeply([unpack('l<l<', $r->{rest})], [333, 251], 'and the reply gives its size');
print $c validate_frame(3, "\x89PNG\r\n\x1a\n" . ("\0" x 32));
$r = read_reply($c, 10);
is($r->{code}, NOT_JPEG, 'a PNG is refused as not a JPEG');
like($r->{message}, qr/PNG/, 'naming the format');

my ($rc, $cli_out) = run_server('--model', $model, '--image', "$root/test/golden/images/synthetic_333x251.jpg",
    '--prompt', $caption, '--max-new-tokens', '12');
my $cli = decode_json($cli_out);
print $c generate_frame(4, $img, $caption, 12);
$r = read_reply($c, 60);
is($r->{code}, OK, 'generate answers') or diag($r->{message});
my $rest = $r->{rest};
my ($w, $h, $n_regions, $tlen) = unpack('l<l<VV', $rest);
my $text = decode('UTF-8', substr($rest, 16, $tlen));
is($text, $cli->{text}, 'the socket answer equals the command line\'s text');
is($n_regions, $cli->{regions}, 'over the same regions');
print $c generate_frame(5, $img, '', 4);
$r = read_reply($c, 10);
is($r->{code}, 1, 'an empty prompt is refused as an invalid argument');
like($r->{message}, qr/the prompt is empty/, 'saying so');

# ---- bad frames close only their connection
for my $bad (['garbage', 'x' x 64], ['truncated header', substr(ping_frame(5), 0, 9)],
             ['other version', frame(1, 6, '', version => 9)],
             ['oversized length', frame(3, 7, '', length => 0xFFFFFFF0)],
             ['unknown kind', frame(77, 8)],
             ['payload shorter than its fields', frame(3, 9, pack('V', 1000) . 'abc')],
             ['count over the limit', frame(4, 10, blob('') . pack('Q<V', 5, 999))],
             ['truncated payload', substr(validate_frame(11, $img), 0, 5000)],
             ['min_score over 1', frame(4, 13, blob($img) . pack("Q<V", 50_000_000, 0) . pack("l<f<C", 0, 1.5, 0))],
             ['want_embeddings byte 7', frame(4, 14, blob($img) . pack("Q<V", 50_000_000, 0) . pack("l<f<C", 0, -1, 7))],
             ['a refer box on a validate', frame(3, 15, blob($img) . pack('Q<V', 50_000_000, 1) . pack('d<4', 1, 1, 5, 5))]) {
    my $b = proto_connect($sock);
    print $b $bad->[1];
    shutdown($b, 1) if $bad->[0] =~ /truncated/;
    my $reply = read_reply($b, 5);
    ok(!defined($reply) || $reply->{code} != OK, "$bad->[0]: refused");
    close($b);
    print $c ping_frame(12);
    $r = read_reply($c, 5);
    is($r && $r->{code}, OK, "$bad->[0]: other connections keep working");
}
like(slurp($log), qr/protocol version 9, this side speaks 6/, 'the log says why a frame of another version was refused');
# any other version is told why in a reply, version 0 too; a frame that is not groma's gets no reply
for my $v (0, 9) {
    my $b = proto_connect($sock);
    print $b frame(1, 40 + $v, '', version => $v);
    my $reply = read_reply($b, 5);
    like($reply && $reply->{message}, qr/protocol version $v, this side speaks 6/, "a frame of version $v is answered why");
    close($b);
}
{
    my $b = proto_connect($sock);
    print $b frame(1, 60, '', magic => 0x414d5248, version => 9);
    ok(!defined(read_reply($b, 5)), 'a frame with another magic is closed without a reply');
    close($b);
}
# a header declaring a 300 MB payload reserves memory only for the bytes that came: ten such frames, stalled
# after 100 bytes, took the server's address space up by over 3 GB (a buffer of the declared size each, besides
# the ten connection threads' stacks and malloc arenas, up to about 1 GB on their own)
{
    my $vm = sub { (slurp("/proc/$pid/status") =~ /^VmSize:\s+(\d+) kB/m)[0] };
    my $before = $vm->();
    my @stalled = map { proto_connect($sock) } 1 .. 10;
    print $_ pack('VvvVV', 0x414d5247, 5, 3, 70, 300 << 20) . ('x' x 100) for @stalled;
    sleep 0.5;
    my $grown = ($vm->() - $before) / 1024;
    cmp_ok($grown, '<', 2000, sprintf('ten stalled frames declaring 300 MB each grew the address space by %.0f MB', $grown));
    close($_) for @stalled;
    print $c ping_frame(71);
    is(read_reply($c, 5)->{code}, OK, 'and the server still answers');
}

# ---- the queue: with --max-queue 1 and --max-batch 1, one runs, one waits, the third is busy
my @conns = map { proto_connect($sock) } 1 .. 3;
print { $conns[0] } generate_frame(20, $img, $caption, 3000);
sleep 0.3;
print { $conns[1] } generate_frame(21, $img, $caption, 4);
sleep 0.1;
print { $conns[2] } generate_frame(22, $img, $caption, 4);
$r = read_reply($conns[2], 10);
is($r->{code}, BUSY, 'past --max-queue a request is refused at once as busy');
like($r->{message}, qr/queue is full/, 'saying the queue is full');
my $st = status_of($sock);
is("$st->{queued}/$st->{running}", '1/1', 'status shows one queued and one running');

# cancel frame for the running one: it stops at the next decode step and answers "cancelled"
$t0 = time;
print { $conns[0] } cancel_frame(23, 20);
$r = read_reply($conns[0], 10);
is($r->{code}, CANCELLED, sprintf('a cancel frame stops a running generation (%.0f ms)', 1000 * (time - $t0)));
$r = read_reply($conns[1], 30);
is($r->{code}, OK, 'the queued request runs next');

# a client that goes away: its running request is dropped and the scheduler is free within 1 s
print { $conns[2] } generate_frame(24, $img, $caption, 3000);
sleep 0.3;
close($conns[2]);
$t0 = time;
my $idle = 0;
while (time - $t0 < 1) {
    $st = status_of($sock);
    if ($st->{queued} == 0 && $st->{running} == 0) { $idle = 1; last; }
    sleep 0.02;
}
ok($idle, sprintf('a closed connection cancels its request: idle after %.0f ms', 1000 * (time - $t0)));
like(slurp($log), qr/request 24 generate .* cancelled/, 'and the log line says it was cancelled');
like(slurp($log), qr/request 4 generate image=\d+B wait=[\d.]+ms run=[\d.]+ms ok/,
    'one log line per request: id, kind, image bytes, wait, run time, outcome');

# ---- other users
SKIP: {
    skip('the other-user checks need root (to run a client as another user)', 2) if $> != 0;
    my $out = `runuser -u nobody -- perl -MIO::Socket::UNIX -e 'print IO::Socket::UNIX->new(Peer => shift) ? "connected" : "refused: \$!"' '$sock' 2>&1`;
    like($out, qr/refused/, "another OS user cannot reach the socket ($out)");
    # a server of another user refuses even root, who can reach its socket: SO_PEERCRED
    my $odir = tempdir(CLEANUP => 1);
    chmod 0700, $odir;
    system('chown', 'nobody', $odir);
    my $opid = fork() // die;
    if ($opid == 0) {
        server_child_io("$odir/log");
        exec('runuser', '-u', 'nobody', '--', $server, '--serve', '--socket', "$odir/s.sock") or die;
    }
    wait_for_socket("$odir/s.sock", 10);
    my $oc = proto_connect("$odir/s.sock");
    print $oc ping_frame(1) if $oc;
    ok(!$oc || !defined(read_reply($oc, 3)), 'a server refuses a peer of another uid');
    kill 'TERM', $opid;
    wait_exit($opid, 5);
    like(slurp("$odir/log"), qr/refused a connection from uid 0/, 'and logs the refusal');
}

# ---- SIGTERM: a queued request is answered with an error, exit 0
@conns = map { proto_connect($sock) } 1 .. 2;
print { $conns[0] } generate_frame(30, $img, $caption, 3000);
sleep 0.3;
print { $conns[1] } generate_frame(31, $img, $caption, 4);
sleep 0.1;
kill 'TERM', $pid;
$r = read_reply($conns[1], 10);
is($r->{code}, UNAVAILABLE, 'SIGTERM answers a queued request with an error');
like($r->{message}, qr/shutting down/, 'saying the server is shutting down');
$r = read_reply($conns[0], 10);
ok(!defined($r) || $r->{code} == CANCELLED || $r->{code} == UNAVAILABLE, 'the running one is stopped');
my $status = wait_exit($pid, 10);
is($status, 0, 'and the server exits 0');
ok(!-e $sock, 'removing its socket');

# ---- SIGTERM with connections not yet accepted: the server is stopped (SIGSTOP) while three clients connect
# (they wait in the listen backlog), two of them send a request, then it gets SIGTERM and SIGCONT together;
# what was sent is answered, not dropped with the connection
($pid, $sock, $log) = start_server('--model', $model, '--device', 'cpu', '--log-level', 'info');
# (a ping answered: every earlier connection was accepted, wait_for_socket's included, and the accept loop waits)
my $pinger = proto_connect($sock);
print $pinger ping_frame(1);
ok(read_reply($pinger, 10), 'the server answers a ping before it is stopped');
kill 'STOP', $pid;
@conns = map { proto_connect($sock) } 1 .. 3;
print { $conns[0] } generate_frame(40, $img, $caption, 4);
print { $conns[1] } ping_frame(41);
kill 'TERM', $pid;
kill 'CONT', $pid;
$r = read_reply($conns[0], 10);
ok($r && $r->{code} == UNAVAILABLE && $r->{message} =~ /shutting down/,
   'a request sent to a connection in the backlog is answered as shutting down')
    or diag($r ? $r->{message} : 'no reply: ' . slurp($log));
$r = read_reply($conns[1], 10);
ok($r && $r->{code} == OK && $r->{id} == 41, 'a ping sent there is answered');
ok(!defined(read_reply($conns[2], 10)), 'the connection that sent nothing is closed');
is(wait_exit($pid, 10), 0, 'and the server exits 0');
# (a poll that ended on the first connect as the SIGSTOP came in accepts that one the usual way after SIGCONT)
like(slurp($log), qr/took [1-3] connection\(s\) waiting to be accepted/, 'the log counts the connections it took');

# ---- a full listen backlog at SIGTERM: the server is stopped while connections fill its backlog (Linux lets
# backlog + 1 = 257 wait; a connect past that would block, so each gives up after 2 s), each sends a ping;
# every one is answered
($pid, $sock, $log) = start_server('--device', 'cpu', '--log-level', 'info');
$pinger = proto_connect($sock);
print $pinger ping_frame(1);
read_reply($pinger, 10);
kill 'STOP', $pid;
my @queued;
for my $k (1 .. 257) {
    my $q = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock, Timeout => 2) or last;
    print $q ping_frame(1000 + $k);
    push @queued, $q;
}
kill 'TERM', $pid;
kill 'CONT', $pid;
my $pinged = grep { my $r = read_reply($queued[$_], 10); $r && $r->{id} == 1001 + $_ } 0 .. $#queued;
is($pinged, scalar(@queued), "every one of the @{[scalar(@queued)]} connections in a full backlog is answered");
is(wait_exit($pid, 10), 0, 'and the server exits 0');
close($_) for @queued;

# ---- a storm of stop signals while the shutdown waits for a half-sent request: the handler must not block
# on its full wake-up pipe (the server then never ended)
($pid, $sock, $log) = start_server('--device', 'cpu');
my $half = proto_connect($sock);
print $half substr(ping_frame(1), 0, 5);
sleep 0.2;
$t0 = time;
while (time - $t0 < 1.5) { kill 'TERM', $pid for 1 .. 1000; }
is(wait_exit($pid, 15), 0, sprintf('a storm of SIGTERM for 1.5 s: the server still exits 0 (after %.1f s)', time - $t0));

# ---- out of file descriptors (prlimit on the running server, with room for a connection or two): the next
# connection waits while the server rests its listener (it does not spin on a failing accept), says so once, and
# is served as soon as the others close. Two limits, an even and an odd number of free descriptors: a connection
# takes two (its socket and its wake eventfd), and with one free it must wait too, not be accepted and dropped
SKIP: {
    skip 'prlimit (util-linux) is not installed', 20 unless system('prlimit --version >/dev/null 2>&1') == 0;
    for my $extra (2, 3) {
        # the second server also has a --watch-fd pipe written every 30 ms: data there must not keep its listener
        # resting for ever (each wake restarted the 100 ms rest)
        my ($wrd, $wwr, $writer);
        if ($extra == 3) {
            $^F = 255;
            pipe($wrd, $wwr) or die;
            $^F = 2;
        }
        ($pid, $sock, $log) = start_server('--model', $model, '--device', 'cpu', '--log-level', 'info',
                                           $wrd ? ('--watch-fd', fileno($wrd)) : ());
        if ($wwr) {
            $writer = fork() // die;
            if ($writer == 0) {
                # (non-blocking: a server that is gone or never read must not leave this child blocked)
                $wwr->autoflush(1);
                $wwr->blocking(0);
                my $parent = getppid();
                while (getppid() == $parent) { print $wwr 'x'; sleep 0.03; }
                exit 0;
            }
        }
        my $limit = limit_descriptors($pid, $sock, $extra);
        my ($served, $waiting) = connect_until_one_waits($sock, 50);
        ok($waiting, "with the descriptors limited to $limit ($extra free below it), " . scalar(@$served)
           . ' connection(s) are served and the next waits');
        my $cpu0 = cpu_ticks($pid);
        sleep 1;
        my $ticks = cpu_ticks($pid) - $cpu0;
        cmp_ok($ticks, '<', 30, "the next one waits without the server spinning ($ticks ticks of CPU in 1 s)");
        my @warned = slurp($log) =~ /cannot accept a connection \(Too many open files\): trying again every 100 ms/g;
        is(scalar(@warned), 1, 'the log says once that it cannot accept a connection') or diag(slurp($log));
        close($_) for @$served;
        my $r2 = $waiting && read_reply($waiting, 10);
        ok($r2 && $r2->{code} == OK, 'the waiting connection is served once the others close') or diag(slurp($log));
        like(slurp($log), qr/accepting connections again/, 'and the log says accepting works again');
        unlike(slurp($log), qr/cannot serve a connection|waited for a thread/, 'no connection was accepted and dropped');
        kill 'TERM', $pid;
        is(wait_exit($pid, 10), 0, 'that server exits 0');
        if ($writer) { kill 'KILL', $writer; waitpid($writer, 0); close($wwr); close($wrd); }
    }

    # a shutdown out of descriptors: room for one connection, which is served and stays open idle; three more
    # connect and send a ping (they wait in the backlog); SIGTERM: the idle connection is hung up to free
    # descriptors, and the three are taken from the backlog and answered
    ($pid, $sock, $log) = start_server('--model', $model, '--device', 'cpu', '--log-level', 'info');
    limit_descriptors($pid, $sock, 2);
    my $idle = proto_connect($sock);
    print $idle ping_frame(60);
    ok(read_reply($idle, 10), 'out of descriptors but for one connection, that one is served');
    my @late = map { proto_connect($sock) } 1 .. 3;
    print { $late[$_] } ping_frame(61 + $_) for 0 .. 2;
    sleep 0.5;
    kill 'TERM', $pid;
    my $answered = grep { my $r = read_reply($late[$_], 10); $r && $r->{id} == 61 + $_ } 0 .. 2;
    is($answered, 3, 'at SIGTERM the three connections waiting in the backlog are answered') or diag(slurp($log));
    ok(!defined(read_reply($idle, 10)), 'the idle connection was hung up for them');
    is(wait_exit($pid, 10), 0, 'that server exits 0');
    like(slurp($log), qr/took 3 connection\(s\) waiting to be accepted.*idle connections were hung up/,
         'and its log says what it did');
}

# ---- --max-connections: at the cap the next connection waits in the backlog (the server does not spin on it),
# the log says so once, and it is served as soon as one closes; at SIGTERM a connection held at the cap is
# still taken and answered
{
    ($pid, $sock, $log) = start_server('--model', $model, '--device', 'cpu', '--log-level', 'info', '--max-connections', '2');
    my @open = map { proto_connect($sock) } 1 .. 2;
    print { $open[$_] } ping_frame(70 + $_) for 0 .. 1;
    is(scalar(grep { read_reply($_, 10) } @open), 2, 'with --max-connections 2, two connections are served');
    my $third = proto_connect($sock);
    print $third ping_frame(72);
    ok(!defined(read_reply($third, 1)), 'a third waits to be accepted');
    my $cpu0 = cpu_ticks($pid);
    sleep 1;
    my $ticks = cpu_ticks($pid) - $cpu0;
    cmp_ok($ticks, '<', 30, "without the server spinning ($ticks ticks of CPU in 1 s)");
    my @warned = slurp($log) =~ /2 connections are open, the most --max-connections allows: new ones wait/g;
    is(scalar(@warned), 1, 'the log says once that the cap is reached') or diag(slurp($log));
    close($open[0]);
    $t0 = time;
    my $r3 = read_reply($third, 10);
    ok($r3 && $r3->{id} == 72, sprintf('it is served once one closes (%.3f s)', time - $t0));
    my $fourth = proto_connect($sock);
    print $fourth ping_frame(73);
    ok(!defined(read_reply($fourth, 0.5)), 'at the cap again a fourth waits');
    kill 'TERM', $pid;
    my $r4 = read_reply($fourth, 10);
    ok($r4 && $r4->{id} == 73, 'and SIGTERM still takes it from the backlog and answers it') or diag(slurp($log));
    is(wait_exit($pid, 10), 0, 'that server exits 0');
}

# ---- out of threads (prlimit on the address space: a new thread's stack cannot be mapped): the next connection
# waits, accepted, while the server tries again every 100 ms without spinning; it is served when memory comes back
# (it was dropped); at SIGTERM out of threads, idle connections are hung up so a waiting one is answered
SKIP: {
    skip 'prlimit (util-linux) is not installed', 11 unless system('prlimit --version >/dev/null 2>&1') == 0;
    # Holds the server's address space to its size now (plus 1 MB), or lets it go again.
    my $limit_memory = sub {
        my ($on) = @_;
        my ($vm) = slurp("/proc/$pid/status") =~ /VmSize:\s+(\d+)/;
        my $as = $on ? ($vm + 1024) * 1024 : 'unlimited';
        system('prlimit', '--pid', $pid, "--as=$as:") == 0 or diag('prlimit failed');
    };
    # Waits until the server's threads stop changing (closed connections' threads have exited, and their stacks
    # are kept for the next threads: what a held address space can still start).
    my $settle_threads = sub { settled_listing("/proc/$pid/task/*", time + 10) };
    ($pid, $sock, $log) = start_server('--model', $model, '--device', 'cpu', '--log-level', 'info');
    wait_ready($sock);
    $settle_threads->();
    $limit_memory->(1);
    my ($served, $waiting) = connect_until_one_waits($sock, 80);
    ok($waiting, 'with the address space held, ' . scalar(@$served) . ' connection(s) are served and the next waits')
        or diag(slurp($log));
    my $cpu0 = cpu_ticks($pid);
    sleep 1;
    my $ticks = cpu_ticks($pid) - $cpu0;
    cmp_ok($ticks, '<', 30, "it waits without the server spinning ($ticks ticks of CPU in 1 s)");
    my @warned = slurp($log) =~ /cannot start a thread for a connection \([^)]*\): trying again every 100 ms/g;
    is(scalar(@warned), 1, 'the log says once that no thread can start') or diag(slurp($log));
    $limit_memory->(0);
    my $r5 = $waiting && read_reply($waiting, 10);
    ok($r5 && $r5->{code} == OK, 'the waiting connection is served once memory is back') or diag(slurp($log));
    like(slurp($log), qr/accepting connections again/, 'and the log says accepting works again');
    close($_) for @$served, $waiting;

    # again, then SIGTERM while one waits for a thread (the threads of the connections just closed leave stacks
    # behind, so some connections are served and idle: the shutdown hangs them up to free a thread)
    $settle_threads->();
    $limit_memory->(1);
    ($served, $waiting) = connect_until_one_waits($sock, 100);
    ok($waiting && @$served, 'held again: ' . scalar(@$served) . ' connection(s) served and idle, the next waits');
    kill 'TERM', $pid;
    my $r6 = $waiting && read_reply($waiting, 10);
    ok($r6 && $r6->{code} == OK, 'at SIGTERM the one waiting for a thread is answered') or diag(slurp($log));
    is(scalar(grep { !defined(read_reply($_, 10)) } @$served), scalar(@$served), 'the idle ones were hung up for it');
    is(wait_exit($pid, 10), 0, 'that server exits 0');
    unlike(slurp($log), qr/waited for a thread|cannot start a thread for a connection$/m, 'no connection was dropped') or diag(slurp($log));
}

# ---- SIGTERM during the model load stops the load at its next weight (it went on to the end): a model of a
# larger configuration with random weights (about 1 GB of f32 generated as it loads; seconds on a CPU)
{
    my $cfg = decode_json(slurp("$model/config.json"));
    @{$cfg->{llm_cfg}}{qw(hidden_size intermediate_size num_hidden_layers num_attention_heads num_key_value_heads)}
        = (1024, 2816, 16, 16, 16);
    open(my $f, '>', "$dir/mid_config.json") or die;
    print $f JSON::PP->new->encode($cfg);
    close($f);
    ($pid, $sock, $log) = start_server('--model', $model, '--random-weights', '--config', "$dir/mid_config.json",
                                       '--device', 'cpu', '--log-level', 'info');
    my $st = status_of($sock);
    my $until = time + 10;
    while (($st->{state} // 0) == 0 && time < $until) { sleep 0.02; $st = status_of($sock); }
    is($st->{state}, 1, 'a larger model is loading');
    $t0 = time;
    kill 'TERM', $pid;
    is(wait_exit($pid, 60), 0, sprintf('SIGTERM during the load: exit 0 after %.2f s', time - $t0));
    like(slurp($log), qr/the model load was stopped by the shutdown after \d+ ms/, 'the load was stopped part-way')
        or diag(slurp($log));
    unlike(slurp($log), qr/ready: model|failed to load/, 'neither loaded nor failed');
}

# ---- a stop sent before the handler is in place: the launcher starts groma-server with SIGTERM blocked, and a
# SIGTERM already pending is taken once the handler is set (a server the launcher stopped at once died of the
# signal, which reads as a crash)
{
    my $early_sock = "$dir/early.sock";
    my $early_log = "$dir/early.log";
    my $early = fork() // die;
    if ($early == 0) {
        POSIX::sigprocmask(POSIX::SIG_BLOCK(), POSIX::SigSet->new(POSIX::SIGTERM()));
        kill 'TERM', $$;    # pending, as when the launcher's stop comes while the program loads
        GromaProto::server_child_io($early_log);
        exec($server, '--serve', '--socket', $early_sock, '--model', $model, '--device', 'cpu') or die;
    }
    is(wait_exit($early, 30), 0, 'a SIGTERM pending when groma-server starts: it exits 0') or kill 'KILL', $early;
    like(slurp($early_log), qr/stop requested: shutting down/, 'through its handler');
}

# ---- no model: image checks work, model requests say what is missing
($pid, $sock, $log) = start_server('--log-level', 'debug');

# A 7000x7000 JPEG that is slow to decode (GromaProto::flat_jpeg): a client that goes away stops its check.
my $big = flat_jpeg(7000);
$c = proto_connect($sock);
$t0 = time;
print $c validate_frame(40, $big);
$r = read_reply($c, 30);
my $full_ms = 1000 * (time - $t0);
is($r->{code}, OK, sprintf('a 7000x7000 JPEG validates (%.0f ms)', $full_ms));
cmp_ok($full_ms, '>', 150, 'and takes long enough to be stopped midway');
$c = proto_connect($sock);
print $c validate_frame(41, $big);
Time::HiRes::sleep(0.05);
close($c);
$t0 = time;
my $stopped = 0;
while (time - $t0 < 5) {
    if (slurp($log) =~ /request 41 validate image=\d+B (\w+)/) { $stopped = $1; last; }
    Time::HiRes::sleep(0.01);
}
is($stopped, 'cancelled', sprintf('a client that goes away stops its image check (ended %.0f ms after the close)',
    1000 * (time - $t0)));

# ---- --max-decodes: image checks and drawings decode on their connections' threads, outside the queue, each
# holding a whole image's pixels; at most N decode at once and the others wait (any number decoded at once: a
# probe's 24 sessions checking a 49-megapixel image took groma-server to 5.2 GB)
{
    my ($dpid, $dsock, $dlog) = start_server('--max-decodes', '1', '--log-level', 'debug');
    like(slurp($dlog), qr/max decodes 1\)/, 'groma-server says its --max-decodes');
    my ($first, $second, $gone) = (proto_connect($dsock), proto_connect($dsock), proto_connect($dsock));
    print $first validate_frame(50, $big);
    Time::HiRes::sleep(0.03);
    print $second validate_frame(51, $big);
    print $gone validate_frame(52, $big);
    Time::HiRes::sleep(0.03);
    close($gone);
    my $r1 = read_reply($first, 30);
    my $t1 = time;
    my $r2 = read_reply($second, 30);
    is($r1->{code}, OK, 'two 7000x7000 checks with --max-decodes 1: the first validates');
    is($r2->{code}, OK, 'and so does the second');
    like(slurp($dlog), qr/request 51: waits for an image decode to end \(--max-decodes 1\)/,
         'the second waited for the first to end');
    cmp_ok(1000 * (time - $t1), '>', 100, 'and decoded after it (its answer came well after the first)');
    like(slurp($dlog), qr/request 52: waits for an image decode to end/, 'a third waited too');
    like(slurp($dlog), qr/request 52 validate image=\d+B cancelled/, 'and ended, cancelled, when its client went away');
    # those waiting are served in the order they came: four sent one after the other (each once the one before
    # says it waits) while a fifth decodes are answered in that order
    my $busy = proto_connect($dsock);
    print $busy validate_frame(60, $big);
    Time::HiRes::sleep(0.03);
    my @line = map { proto_connect($dsock) } 1 .. 4;
    for my $k (0 .. 3) {
        print { $line[$k] } validate_frame(61 + $k, $big);
        my $until = time + 10;
        Time::HiRes::sleep(0.01) until slurp($dlog) =~ /request @{[61 + $k]}: waits for an image decode/ || time > $until;
    }
    is(read_reply($busy, 30)->{code}, OK, 'the one decoding first validates');
    my @order;
    my $sel = IO::Select->new(@line);
    my $until = time + 60;
    while (@order < 4 && time < $until) {
        for my $ready ($sel->can_read(1)) {
            my ($k) = grep { $line[$_] == $ready } 0 .. 3;
            my $r = read_reply($ready, 30);
            push @order, ($r && $r->{code} == OK ? 61 + $k : "failed " . (61 + $k));
            $sel->remove($ready);
        }
    }
    is("@order", '61 62 63 64', 'the four waiting are answered in the order they came');
    kill 'TERM', $dpid;
    is(wait_exit($dpid, 20), 0, 'that server stops');
}

$c = proto_connect($sock);
print $c validate_frame(1, $img);
is(read_reply($c, 10)->{code}, OK, 'without --model images still validate');
print $c generate_frame(2, $img, $caption, 4);
$r = read_reply($c, 10);
is($r->{code}, UNAVAILABLE, 'and model requests are refused');
like($r->{message}, qr/without a model/, 'saying there is no model');
$st = status_of($sock);
is("$st->{state}/$st->{weights}", '3/', 'status says no_model, with no weight type');
kill 'TERM', $pid;
is(wait_exit($pid, 10), 0, 'SIGTERM stops it');

# ---- a model that fails to load: state failed with the reason, the server stays up
($pid, $sock, $log) = start_server('--model', "$dir/no-such-model");
my $until = time + 10;
$st = status_of($sock);
while (($st->{state} // 0) != 4 && time < $until) { sleep 0.05; $st = status_of($sock); }
is($st->{state}, 4, 'a bad model path gives state failed');
$c = proto_connect($sock);
print $c generate_frame(1, $img, $caption, 4);
$r = read_reply($c, 10);
like($r->{message}, qr/the model failed to load: .*no-such-model/, 'model requests say why the model failed');
kill 'TERM', $pid;
wait_exit($pid, 10);

# ---- the launcher's pipe: end of file stops the server
$^F = 255;	# the pipe's fds must survive exec (Perl sets close-on-exec above $^F)
pipe(my $rd, my $wr) or die;
$^F = 2;
$n_servers++;
my $psock = "$dir/p.sock";
$pid = fork() // die;
if ($pid == 0) {
    close($wr);
    server_child_io("$dir/p.log");
    exec($server, '--serve', '--socket', $psock, '--watch-fd', fileno($rd)) or die;
}
close($rd);
ok(wait_for_socket($psock, 10), 'a server with --watch-fd starts');
$t0 = time;
close($wr);
$status = wait_exit($pid, 5);
ok(defined $status, sprintf('and exits when the watched pipe closes (%.0f ms)', 1000 * (time - $t0)));

# ---- refusing to start
my $open = tempdir(CLEANUP => 1);
chmod 0755, $open;
($rc, undef, my $err) = run_server('--serve', '--socket', "$open/s.sock");
is($rc, 4, 'a socket directory others can enter is refused (exit 4)');
like($err, qr/mode 0700/, 'saying the directory must be 0700');
($rc) = run_server('--serve');
is($rc, 2, '--serve without --socket is a usage error');
($rc, undef, $err) = run_server('--serve', '--socket', "$dir/x.sock", '--watch-fd', '77');
is($rc, 2, '--watch-fd naming a closed descriptor is a usage error');
like($err, qr/--watch-fd 77 is not an open file descriptor/, 'saying so');
# only a socket at the path is replaced: a regular file (a mistyped path), a directory or a link stays
{
    open(my $f, '>', "$dir/notes.txt") or die;
    print $f "precious\n";
    close($f);
}
($rc, undef, $err) = run_server('--serve', '--socket', "$dir/notes.txt");
is($rc, 4, 'a regular file at the socket path is refused (exit 4)');
like($err, qr/cannot listen on \S+notes\.txt: it is a regular file, not a socket/, 'saying it is not a socket');
is(slurp("$dir/notes.txt"), "precious\n", 'and the file is left as it was');
mkdir("$dir/sock.d") or die;
($rc, undef, $err) = run_server('--serve', '--socket', "$dir/sock.d");
is($rc, 4, 'a directory at the socket path is refused (exit 4)');
like($err, qr/it is a directory, not a socket/, 'saying so');
symlink("$dir/notes.txt", "$dir/link.sock") or die;
($rc, undef, $err) = run_server('--serve', '--socket', "$dir/link.sock");
is($rc, 4, 'a symbolic link at the socket path is refused (exit 4)');
ok(-l "$dir/link.sock" && -f "$dir/notes.txt", 'and the link and its file stay');
($rc, undef, $err) = run_server('--serve', '--socket', '');
is($rc, 4, 'an empty socket path is refused (exit 4)');
like($err, qr/the socket path is empty/, 'saying so');

done_testing();
