# groma-server --serve keeps the last quarter of its queue for clients
# with no request queued: with --max-queue 4 one client process (here the
# test itself, on several connections, as a PostgreSQL session's array
# call) gets 3 places and its fourth request is refused as busy "for this
# client", while another process still gets the last place.  Two more
# processes with nothing queued then find the queue full and each takes
# the place of this client's newest queued request (answered busy); a
# fifth finds no client holding two and is refused.  Every request left
# queued is answered, and STATUS counts the refusals as busy, not failed.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;
use GromaProto;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);

use constant { OK => 0, CANCELLED => 12, BUSY => 13 };

my $model = "$root/test/golden/tiny-groma";
my $img = do { local $/; open(my $f, '<:raw', "$root/test/golden/images/synthetic_333x251.jpg") or die; <$f> };
my $prompt = 'What is in this image?';
my $dir = tempdir(CLEANUP => 1);
chmod 0700, $dir;
my $sock = "$dir/s.sock";
my $log = "$dir/s.log";
my $pid = spawn_server($server, $sock, $log, '--model', $model, '--device', 'cpu', '--max-queue', '4',
                       '--max-batch', '1', '--log-level', 'info');
ok(wait_for_socket($sock, 20), 'groma-server listens') or diag(slurp($log));
my $until = time + 20;
sleep 0.05 while (status_of($sock)->{state} // 0) != 2 && time < $until;

# Waits up to 10 s until the server's queue holds n requests; returns true when it does.
sub queued_reaches {
    my ($n) = @_;
    my $end = time + 10;
    while (time < $end) {
        return 1 if (status_of($sock)->{queued} // -1) == $n;
        sleep 0.02;
    }
    return 0;
}

# Sends a GENERATE from a child process (another client) and returns (pid, read end of a pipe that gets
# "code message" of its reply).
sub request_from_other_process {
    my ($id) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $child = fork() // die "fork: $!";
    if ($child == 0) {
        close($r);
        my $c = proto_connect($sock);
        print $c generate_frame($id, $img, $prompt, 4);
        my $reply = read_reply($c, 120);
        print $w $reply ? "$reply->{code} $reply->{message}\n" : "none\n";
        close($w);
        POSIX::_exit(0);
    }
    close($w);
    return ($child, $r);
}

# one long answer runs (--max-batch 1), then this process queues 3 more on 3 connections
my $running = proto_connect($sock);
print $running generate_frame(1, $img, $prompt, 3000);
$until = time + 10;
sleep 0.02 while (status_of($sock)->{running} // 0) != 1 && time < $until;
my @mine = map { proto_connect($sock) } 1 .. 4;
for my $k (0 .. 2) {
    print { $mine[$k] } generate_frame(10 + $k, $img, $prompt, 4);
    ok(queued_reaches($k + 1), 'request ' . ($k + 1) . ' of this client is queued');
}
print { $mine[3] } generate_frame(13, $img, $prompt, 4);
my $r = read_reply($mine[3], 10);
is($r->{code}, BUSY, "this client's fourth request is refused as busy while a place is free");
like($r->{message}, qr/queue is full for this client \(3 of its requests wait; the last 1 of 4 places are kept for other clients\)/,
     'saying the last place is kept for other clients');

# another process takes the place kept for it
my @others = [request_from_other_process(20)];
ok(queued_reaches(4), "another process's request takes the last place");

# the queue is full: a third and a fourth process each take the place of this client's newest request, which
# is answered busy (the newest first: request 3, then 2)
for my $k (reverse 1 .. 2) {
    push @others, [request_from_other_process(20 + 10 * (3 - $k))];
    my $given = read_reply($mine[$k], 10);
    is($given && $given->{code}, BUSY, 'request ' . ($k + 1) . " of this client gives its place to another process's");
    like($given && $given->{message}, qr/queue is full: this request gave its place to a client with none queued \(${\($k + 1)} of this client's requests waited\)/,
         'saying why');
    ok(queued_reaches(4), 'the queue still holds 4');
}

# a fifth process finds nobody holding two places: refused
my ($fifth, $fifth_out) = request_from_other_process(50);
my $fifth_reply = <$fifth_out> // '';
like($fifth_reply, qr/^13 groma-server's queue is full \(4 requests wait\)/,
     'a fifth process finds the queue full, with no client holding two places');
waitpid($fifth, 0);

# the long answer is cancelled: every queued request is answered
print $running cancel_frame(2, 1);
is(read_reply($running, 30)->{code}, CANCELLED, 'the long answer is cancelled');
my $a = read_reply($mine[0], 60);
is($a && $a->{code}, OK, 'the queued request 1 of this client is answered');
for my $o (@others) {
    my ($child, $out) = @$o;
    my $reply = <$out> // '';
    like($reply, qr/^0 /, "another process's queued request is answered");
    waitpid($child, 0);
}

# STATUS counts each request once: the four refusals as busy, not as failed
my $st = status_of($sock);
is_deeply([@$st{qw(served failed cancelled busy)}], [4, 0, 1, 4],
          'STATUS: 4 served, 0 failed, 1 cancelled, 4 refused as busy');

kill 'TERM', $pid;
is(wait_exit($pid, 30), 0, 'groma-server exits 0 on SIGTERM');
done_testing();
