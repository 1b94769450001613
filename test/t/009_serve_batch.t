# Continuous batching in groma-server --serve (tiny model, CPU): requests
# sent at once over many connections (their images going through the
# vision stages together), joining while others decode (their prefills in
# the same step as the others' decode tokens), get
# exactly the command line's answers (text and greedy ids); STATUS shows
# the batch and the KV pool in use; a KV pool too small for all of them
# makes requests wait (never fail), one that could never fit is refused
# with a limit error; caches that start small grow, and when the pool
# cannot hold a growth the youngest answer starts again later with the same
# answer (and can be cancelled while it waits); regions requests share a
# vision batch and go ahead of answers waiting for KV room; SIGTERM stops a vision
# batch at its next stage; a batch member whose client goes away leaves without
# disturbing the others; SIGTERM answers the whole batch and exits 0; a
# vision batch too big for --act-mb runs one image at a time with the same
# answers; a request asking to run alone waits for the batch to end and
# runs with no answer beside it; a server of random weights (--random-weights --config) answers.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;
use GromaProto;
use File::Temp qw(tempdir);

use Time::HiRes qw(time sleep);
use JSON::PP qw(decode_json);
use Encode qw(encode);

use constant { OK => 0, LIMIT => 6, CANCELLED => 12, UNAVAILABLE => 14 };

my $model = "$root/test/golden/tiny-groma";
my @names = ('synthetic_333x251.jpg', 'extreme_ironing.jpg', 'waterview.jpg');
my %img = map {
    my $n = $_;
    ($n => do { local $/; open(my $f, '<:raw', "$root/test/golden/images/$n") or die; <$f> })
} @names;
my @prompts = ('[grounding]Please briefly summarize the content of this image.', 'What is in this image?');
my $dir = tempdir(CLEANUP => 1);
chmod 0700, $dir;

my $n_servers = 0;
# Starts groma-server --serve on the tiny model with extra arguments; returns (pid, socket, log).
sub start_server {
    my (@args) = @_;
    $n_servers++;
    my ($sock, $log) = ("$dir/b$n_servers.sock", "$dir/b$n_servers.log");
    my $pid = spawn_server($server, $sock, $log, '--model', $model, '--device', 'cpu', '--log-level', 'info', @args);
    ok(wait_for_socket($sock, 20), "server $n_servers listens (@args)");
    # the model loads in the background: wait until STATUS says ready (state 2)
    my $until = time + 30;
    sleep 0.05 while (status_of($sock)->{state} // -1) != 2 && time < $until;
    return ($pid, $sock, $log);
}

# The command line's answer (text and ids) for an image, prompt and token limit, computed once.
my %cli;
sub cli_answer {
    my ($name, $prompt, $tokens) = @_;
    my $key = "$name|$prompt|$tokens";
    return $cli{$key} //= do {
        my ($rc, $out) = run_server('--model', $model, '--device', 'cpu', '--image', "$root/test/golden/images/$name",
            '--prompt', $prompt, '--max-new-tokens', $tokens);
        my $j = decode_json($out);
        { text => encode('UTF-8', $j->{text}), ids => join(',', @{$j->{generated_ids}}) };
    };
}

# Sends requests [name, prompt, tokens] one connection each, start_gap seconds apart, polling STATUS while
# they run; returns (replies in order, the largest batch and KV use STATUS showed).
sub run_concurrently {
    my ($sock, $start_gap, @reqs) = @_;
    my @conns;
    my ($most, $kv_most) = (0, 0);
    for my $i (0 .. $#reqs) {
        my ($name, $prompt, $tokens) = @{$reqs[$i]};
        push @conns, proto_connect($sock);
        print { $conns[-1] } generate_frame(100 + $i, $img{$name}, $prompt, $tokens);
        my $st = status_of($sock);
        $most = $st->{batch} if ($st->{batch} // 0) > $most;
        $kv_most = $st->{kv_used} if ($st->{kv_used} // 0) > $kv_most;
        sleep $start_gap;
    }
    my @replies;
    my $pending = 1;
    while ($pending) {
        my $st = status_of($sock);
        $most = $st->{batch} if ($st->{batch} // 0) > $most;
        $kv_most = $st->{kv_used} if ($st->{kv_used} // 0) > $kv_most;
        $pending = ($st->{batch} // 0) + ($st->{queued} // 0) + ($st->{running} // 0) > 0;
        sleep 0.01;
    }
    push @replies, read_reply($_, 120) for @conns;
    return (\@replies, $most, $kv_most);
}

# Checks that every reply equals the command line's answer for its request.
sub check_answers {
    my ($what, $replies, @reqs) = @_;
    my ($ok, $same) = (0, 0);
    for my $i (0 .. $#reqs) {
        my $r = $replies->[$i];
        next unless $r && $r->{code} == OK;
        $ok++;
        my $g = parse_generate($r);
        my $want = cli_answer(@{$reqs[$i]});
        if ($g->{text} eq $want->{text} && join(',', @{$g->{ids}}) eq $want->{ids}) {
            $same++;
        } else {
            diag("$what: request $i (@{$reqs[$i]}[0,2]) got ids " . join(',', @{$g->{ids}}) . ", alone $want->{ids}");
        }
    }
    is($ok, scalar @reqs, "$what: every request is answered");
    is($same, scalar @reqs, "$what: every answer (text and greedy ids) equals the command line's alone");
}

# eight requests of different images, prompts and lengths
my @reqs = map { [$names[$_ % 3], $prompts[$_ % 2], (12, 30, 5, 20)[$_ % 4]] } 0 .. 7;
cli_answer(@$_) for @reqs;

# ---- a batch of up to 8, requests joining while others decode
my ($pid, $sock, $log) = start_server('--max-batch', '8', '--kv-cache-mb', '64');
my $st = status_of($sock);
is("$st->{max_batch}/$st->{kv_total}/$st->{kv_used}/$st->{batch}/$st->{weights}", '8/' . (64 << 20) . '/0/0/f32',
    'STATUS shows --max-batch, the KV pool and nothing in use, and the weights the CPU keeps (f32)');
my ($replies, $most, $kv_most) = run_concurrently($sock, 0.02, @reqs);
check_answers('batch of up to 8', $replies, @reqs);
ok($most >= 2 && $most <= 8, "requests were decoded together (STATUS showed a batch of up to $most)");
ok($kv_most > 0, "STATUS showed KV cache in use ($kv_most bytes)");
like(slurp($log), qr/the vision of [2-8] images as one batch/, 'queued images went through the vision stages as one batch');
like(slurp($log), qr/the prefill of [1-8] prompts beside the decoding of [1-7] answers/,
     "newcomers' prefills ran in the same step as the others' decode tokens");
$st = status_of($sock);
is("$st->{batch}/$st->{kv_used}/$st->{served}", '0/0/8', 'afterwards the batch is empty, the pool free, 8 served');

# a member whose client goes away leaves; the others finish with their answers alone
my @long = ([$names[0], $prompts[0], 600], [$names[1], $prompts[1], 300], [$names[2], $prompts[0], 400]);
cli_answer(@$_) for @long;
my @conns = map { proto_connect($sock) } @long;
print { $conns[$_] } generate_frame(200 + $_, $img{$long[$_][0]}, $long[$_][1], $long[$_][2]) for 0 .. $#long;
my $until = time + 30;
sleep 0.02 while (status_of($sock)->{batch} // 0) < 3 && time < $until;
is(status_of($sock)->{batch}, 3, 'three long answers decode together');
close($conns[0]);
$until = time + 10;
sleep 0.01 while (status_of($sock)->{batch} // 0) == 3 && time < $until;
my $left = status_of($sock)->{batch};
ok($left < 3, "the member whose client went away left the batch at its next step (batch $left)");
my @rest = map { read_reply($conns[$_], 120) } 1, 2;
check_answers('after one member left', \@rest, @long[1, 2]);
like(slurp($log), qr/request 200 generate .* cancelled/, 'its log line says it was cancelled');
is(status_of($sock)->{kv_used}, 0, 'and the KV pool is whole again');

# SIGTERM with a batch running: every member is answered, exit 0
@conns = map { proto_connect($sock) } @long;
print { $conns[$_] } generate_frame(300 + $_, $img{$long[$_][0]}, $long[$_][1], $long[$_][2]) for 0 .. $#long;
$until = time + 30;
sleep 0.02 while (status_of($sock)->{batch} // 0) < 2 && time < $until;
kill 'TERM', $pid;
my $answered = grep { my $r = read_reply($_, 20); $r && ($r->{code} == UNAVAILABLE || $r->{code} == CANCELLED) } @conns;
is($answered, 3, 'SIGTERM answers every member of the batch as shutting down');
is(wait_exit($pid, 20), 0, 'and the server exits 0');

# ---- a pool with room for only some: the others wait in the queue and are answered the same
($pid, $sock, $log) = start_server('--max-batch', '8', '--kv-cache-mb', '1');
($replies, $most, $kv_most) = run_concurrently($sock, 0, @reqs);
check_answers('a 1 MB KV pool', $replies, @reqs);
ok($kv_most <= 1 << 20, "the pool was never over its size (at most $kv_most bytes in use)");
ok($most < 8, "so fewer than 8 decoded together (at most $most)");

# an answer that could never fit the pool is refused at once, naming the setting
my $c = proto_connect($sock);
print $c generate_frame(400, $img{$names[0]}, $prompts[0], 3000);
my $r = read_reply($c, 30);
is($r->{code}, LIMIT, 'an answer whose KV cache could never fit the pool is refused as a limit');
like($r->{message}, qr/more than the KV cache pool of 1\.00 MB holds \(--kv-cache-mb\)/, 'saying why');
$st = status_of($sock);
is("$st->{batch}/$st->{kv_used}/$st->{state}", '0/0/2', 'and the server keeps serving');
kill 'TERM', $pid;
is(wait_exit($pid, 20), 0, 'the second server exits 0');

# ---- caches that start with room for 8 new tokens and grow: three answers whose whole KV bounds would not fit
# a 1 MB pool together start at once; when a growth does not fit, the youngest member stops and starts again
# later with its whole bound, and every answer is still the command line's
my @grow = ([$names[0], $prompts[0], 600], [$names[1], $prompts[1], 300], [$names[2], $prompts[0], 400]);
cli_answer(@$_) for @grow;
($pid, $sock, $log) = start_server('--max-batch', '8', '--kv-cache-mb', '1', '--kv-first-tokens', '8');
($replies, $most, $kv_most) = run_concurrently($sock, 0, @grow);
check_answers('caches growing in a 1 MB pool', $replies, @grow);
ok($most >= 2, "answers decoded together (STATUS showed a batch of up to $most)");
like(slurp($log), qr/request \d+ \(job \d+\): stopped after \d+ new tokens to free KV room for older answers; it starts again/,
     'a growth that did not fit stopped the youngest member, saying so in the log');
$st = status_of($sock);
is("$st->{batch}/$st->{queued}/$st->{kv_used}/$st->{served}/$st->{failed}", '0/0/0/3/0',
   'afterwards the batch and the queue are empty, the pool free, 3 served and none failed');

# an answer alone whose cache cannot grow beside its old block (the two would not fit the pool together) stops
# itself and starts again with its whole cache, which the empty pool holds: the same answer
my @big = ([$names[0], $prompts[0], 1400]);
cli_answer(@$_) for @big;
my $before = () = slurp($log) =~ /stopped after/g;
($replies) = run_concurrently($sock, 0, @big);
check_answers('an answer alone that outgrows half the pool', $replies, @big);
my $after = () = slurp($log) =~ /stopped after/g;
is($after - $before, 1, 'it was stopped once (its growth from room for 512 new tokens to 1024 did not fit beside '
   . 'its old block)') or diag(slurp($log));
like(slurp($log), qr/stopped after \d+ new tokens because its KV cache could not grow in the pool/,
     'the log says it was stopped because its own cache could not grow');

# a member stopped that way and waiting to start again goes away: it is answered as cancelled, the others finish
my $stops = () = slurp($log) =~ /stopped after/g;
@conns = map { proto_connect($sock) } @grow;
print { $conns[$_] } generate_frame(600 + $_, $img{$grow[$_][0]}, $grow[$_][1], $grow[$_][2]) for 0 .. $#grow;
$until = time + 60;
my $stopped;
while (!defined $stopped && time < $until) {
    my @ids = slurp($log) =~ /request (\d+) \(job \d+\): stopped after/g;
    $stopped = $ids[-1] if @ids > $stops;
    sleep 0.005;
}
ok(defined $stopped && $stopped >= 600 && $stopped <= 602, 'one of three new answers was stopped to free KV room');
$stopped //= 602;
close($conns[$stopped - 600]);
my @others = grep { $_ != $stopped - 600 } 0 .. 2;
@rest = map { read_reply($conns[$_], 120) } @others;
check_answers('beside a stopped member that went away', \@rest, @grow[@others]);
$until = time + 20;
sleep 0.02 while status_of($sock)->{cancelled} < 1 && time < $until;
like(slurp($log), qr/request $stopped generate .* cancelled/, 'the stopped member that went away was cancelled');
is(status_of($sock)->{cancelled}, 1, 'and counted as cancelled in STATUS');
$st = status_of($sock);
is("$st->{batch}/$st->{queued}/$st->{kv_used}/$st->{state}", '0/0/0/2', 'the pool is whole again and the server serves');
kill 'TERM', $pid;
is(wait_exit($pid, 20), 0, 'that server exits 0');

# ---- regions requests queued together share a vision batch: each reply equals the same request served alone
# (within 1e-5 of the box size: a batch may round differently), and a broken image fails only its own request
($pid, $sock, $log) = start_server('--max-batch', '8');
my %alone;
for my $n (@names) {
    $c = proto_connect($sock);
    print $c regions_frame(900, $img{$n});
    $alone{$n} = parse_regions(read_reply($c, 60));
}
my $broken = substr($img{$names[2]}, 0, length($img{$names[2]}) / 2);
my @batch = map { $names[$_ % 3] } 0 .. 6;
@conns = map { proto_connect($sock) } 0 .. 8;
print { $conns[0] } regions_frame(910, $img{$names[2]});	# keeps the scheduler busy while the others queue
sleep 0.02;
print { $conns[$_ + 1] } regions_frame(911 + $_, $img{$batch[$_]}) for 0 .. 6;
print { $conns[8] } regions_frame(918, $broken);
my @got = map { read_reply($_, 60) } @conns;
my ($ok_count, $same) = (0, 0);
for my $i (0 .. 6) {
    my $r = $got[$i + 1];
    next unless $r && $r->{code} == OK;
    $ok_count++;
    my ($g, $want) = (parse_regions($r), $alone{$batch[$i]});
    my $close = @{$g->{regions}} == @{$want->{regions}} && @{$g->{regions}} > 0;
    for my $k (0 .. $#{$want->{regions}}) {
        last unless $close;
        my ($a, $b) = ($g->{regions}[$k], $want->{regions}[$k]);
        $close = 0 if abs($a->{score} - $b->{score}) > 1e-5;
        $close = 0 if grep { abs($a->{box}[$_] - $b->{box}[$_]) > 1e-5 * $want->{width} } 0 .. 3;
    }
    $same++ if $close;
}
is($ok_count, 7, 'seven regions requests sent at once are answered');
is($same, 7, 'each with the regions of its image served alone');
ok($got[8] && $got[8]{code} != OK && $got[8]{message} =~ /JPEG|premature|truncated/i,
   'the broken image beside them fails alone') or diag($got[8] ? $got[8]{message} : 'no reply');
like(slurp($log), qr/the vision of [2-8] images as one batch/, 'queued regions requests went through the vision '
     . 'stages as one batch');
$st = status_of($sock);
is("$st->{queued}/$st->{running}/$st->{served}/$st->{failed}", '0/0/11/1', '11 served and 1 failed');
kill 'TERM', $pid;
is(wait_exit($pid, 20), 0, 'that server exits 0');

# ---- a regions request does not wait behind an answer that waits for KV room: answer A holds most of a 1 MB pool
# (whole caches at once), answer B waits at the queue's head for A to leave, and a regions request C queued behind
# B runs while A decodes
($pid, $sock, $log) = start_server('--max-batch', '8', '--kv-cache-mb', '1', '--kv-first-tokens', '2048',
                                   '--log-level', 'debug');
my @wait = ([$names[0], $prompts[0], 1400], [$names[1], $prompts[1], 600]);
cli_answer(@$_) for @wait;
@conns = map { proto_connect($sock) } 0 .. 2;
print { $conns[0] } generate_frame(800, $img{$wait[0][0]}, $wait[0][1], $wait[0][2]);
$until = time + 30;
sleep 0.01 while (status_of($sock)->{batch} // 0) < 1 && time < $until;
print { $conns[1] } generate_frame(801, $img{$wait[1][0]}, $wait[1][1], $wait[1][2]);
# (the head leaves the queue for a moment while its KV bound is learnt: wait for both at once)
while (1) {
    $st = status_of($sock);
    last if "$st->{batch}/$st->{queued}" eq '1/1' || time >= $until;
    sleep 0.01;
}
is("$st->{batch}/$st->{queued}", '1/1', 'one answer decodes and the next waits in the queue for KV room');
print { $conns[2] } regions_frame(802, $img{$names[2]});
$r = read_reply($conns[2], 60);
is($r->{code}, OK, 'a regions request sent behind the waiting answer is answered');
@rest = map { read_reply($conns[$_], 120) } 0, 1;
check_answers('around a regions request that went ahead', \@rest, @wait);
my $lines = slurp($log);
my ($regions_at, $first_at) = (index($lines, 'request 802 regions'), index($lines, 'request 800 generate'));
ok($regions_at >= 0 && $first_at >= 0 && $regions_at < $first_at,
   'the regions request finished before the answer that held the pool, not after the waiting one started')
    or diag($lines);
like($lines, qr/request 802 \(job \d+\) goes ahead of 1 answers waiting for room/,
     'the debug log says it went ahead of the waiting answer');
$st = status_of($sock);
is("$st->{batch}/$st->{queued}/$st->{kv_used}/$st->{served}/$st->{failed}", '0/0/0/3/0', 'all three served');
kill 'TERM', $pid;
is(wait_exit($pid, 20), 0, 'that server exits 0');

# ---- SIGTERM while eight images go through the vision stages as one batch: the batch stops at its next stage
# (every one of its requests is cancelled), each is answered as shutting down, and the server exits 0
# (answers of 200 tokens: none can end between the log line and the signal, even on a loaded machine)
($pid, $sock, $log) = start_server('--max-batch', '8');
@conns = map { proto_connect($sock) } @reqs;
print { $conns[$_] } generate_frame(700 + $_, $img{$reqs[$_][0]}, $reqs[$_][1], 200) for 0 .. $#reqs;
$until = time + 30;
sleep 0.002 while slurp($log) !~ /the vision of [2-8] images as one batch/ && time < $until;
kill 'TERM', $pid;
$answered = grep { my $r = read_reply($_, 20); $r && $r->{code} == UNAVAILABLE } @conns;
is($answered, 8, 'SIGTERM during a vision batch answers every request as shutting down');
is(wait_exit($pid, 20), 0, 'and the server exits 0');
like(slurp($log), qr/the vision of [2-8] images stopped: every one of their requests was cancelled/,
     'the vision batch stopped at its next stage, saying so in the log') or diag(slurp($log));

# ---- an activation arena too small for a vision batch: its images run one at a time, the answers are the same
($pid, $sock, $log) = start_server('--max-batch', '8', '--act-mb', '300');
($replies, $most, $kv_most) = run_concurrently($sock, 0, @reqs);
check_answers('a 300 MB activation arena', $replies, @reqs);
like(slurp($log), qr/the vision of \d+ images did not fit the activation arena \(--act-mb\): they ran one at a time/,
     'the vision batch that did not fit ran one image at a time, saying so in the log');
# regions requests too: each alone when their batch does not fit, with the regions of their images served alone
my $fallbacks_before = () = slurp($log) =~ /did not fit the activation arena/g;
@conns = map { proto_connect($sock) } 0 .. 7;
print { $conns[0] } regions_frame(950, $img{$names[2]});
sleep 0.02;
print { $conns[$_ + 1] } regions_frame(951 + $_, $img{$batch[$_]}) for 0 .. 6;
@got = map { read_reply($_, 60) } @conns;
my $alike = grep {
    my $r = $got[$_ + 1];
    my ($g, $want) = ($r && $r->{code} == OK ? parse_regions($r) : { regions => [] }, $alone{$batch[$_]});
    @{$g->{regions}} == @{$want->{regions}} && !grep {
        my $k = $_;
        grep { abs($g->{regions}[$k]{box}[$_] - $want->{regions}[$k]{box}[$_]) > 1e-5 * $want->{width} } 0 .. 3
    } 0 .. $#{$want->{regions}}
} 0 .. 6;
is($alike, 7, 'regions requests whose vision batch does not fit the arena get the regions of their images alone');
my $fallbacks_after = () = slurp($log) =~ /did not fit the activation arena/g;
ok($fallbacks_after > $fallbacks_before, 'their batch ran one image at a time, saying so in the log');
kill 'TERM', $pid;
is(wait_exit($pid, 20), 0, 'that server exits 0');

# ---- a request asking to run alone (groma_caption_table's suspect rows): it waits for the batch to end, runs with
# no other answer beside it, and the request queued behind it waits for it; each answer is the command line's.
# Lengths tell the order: one that ran beside a longer one would finish, and be logged, first
($pid, $sock, $log) = start_server('--max-batch', '8');
my @order = ([$names[2], $prompts[1], 200], [$names[0], $prompts[1], 200], [$names[1], $prompts[1], 100],
             [$names[2], $prompts[0], 8]);
cli_answer(@$_) for @order;
@conns = map { proto_connect($sock) } 0 .. 3;
for my $i (0 .. 3) {
    print { $conns[$i] } generate_frame(600 + $i, $img{$order[$i][0]}, @{$order[$i]}[1, 2], $i == 2 ? 1 : 0);
    sleep 0.1;
}
my @alone_replies = map { read_reply($_, 120) } @conns;
check_answers('a request run alone, and those around it', \@alone_replies, @order);
my @lines = split /\n/, slurp($log);
my %at;
for my $k (0 .. $#lines) {
    $at{"done $1"} //= $k if $lines[$k] =~ /request (60\d) generate .* ok/;
    $at{"alone $1"} //= $k if $lines[$k] =~ /request (60\d) \(job \d+\) runs alone/;
}
ok(defined $at{'alone 602'} && !defined $at{'alone 600'} && !defined $at{'alone 603'},
   'the log says the request asking for it runs alone, and no other') or diag(slurp($log));
ok(defined $at{'alone 602'} && $at{'alone 602'} > ($at{'done 600'} // 1e9) && $at{'alone 602'} > ($at{'done 601'} // 1e9),
   'it started once the two longer answers before it had ended');
ok(($at{'done 603'} // -1) > ($at{'done 602'} // 1e9), 'the short request behind it finished after it: it did not join it');
kill 'TERM', $pid;
is(wait_exit($pid, 20), 0, 'that server exits 0');

# ---- random weights of a configuration (GPU benchmarks without the checkpoint): the folder gives the tokenizer
my ($rc, $out, $err) = run_server('--serve', '--socket', "$dir/r.sock", '--random-weights');
is($rc, 2, '--serve --random-weights without --config and --model is a usage error');
like($err, qr/needs --config real\|FILE and --model DIR/, 'saying what it needs');
($pid, $sock, $log) = start_server('--random-weights', '--config', "$model/config.json");
$c = proto_connect($sock);
print $c generate_frame(500, $img{$names[0]}, $prompts[0], 8);
$r = read_reply($c, 60);
is($r->{code}, OK, 'a server of random weights answers') or diag($r->{message});
is(scalar @{parse_generate($r)->{ids}}, 8, 'with the 8 tokens asked for');
kill 'TERM', $pid;
is(wait_exit($pid, 20), 0, 'and exits 0');
done_testing();
