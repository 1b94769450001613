# groma-server --bench --random-weights: the full-size benchmark's figures, run
# here on the CPU with the tiny configuration (random weights, no files read
# but config.json), and its usage errors.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;

my $config = "$root/test/golden/tiny-groma/config.json";
my ($rc, $out, $err) = run_server('--bench', '--random-weights', '--config', $config);
is($rc, 0, '--bench on the tiny configuration exits 0') or diag($err);
for my $f (qw(build_ms copy_bandwidth dinov2_ms proposer_ms region_encoder_ms prefill_ms decode_step_ms
              decode_tokens_per_s activation_peak_mb)) {
    like($out, qr/^\{"figure": "$f", "value": [0-9.]+, "unit": "[^"]+"/m, "prints $f as a JSON line");
}
like($out, qr/^\{"figure": "device", "name": "CPU, \d+ threads"\}$/m, 'names the device');
for my $n (1, 8, 32, 64) {
    like($out, qr/^\{"figure": "decode_step_ms_batch_$n", "value": [0-9.]+, "unit": "ms"/m,
        "prints the decode step at batch $n");
}
my ($pre) = $out =~ /"figure": "prefill_ms".*"note": "(\d+) prompt tokens/;
is($pre, 256 + 200 + 40, 'prefill covers 256 image tokens, 100 regions and the text');
diag($out);

($rc, $out, $err) = run_server('--bench', '--config', $config);
is($rc, 2, '--bench without --random-weights is a usage error');
($rc, $out, $err) = run_server('--bench', '--random-weights');
is($rc, 2, '--bench without --config is a usage error');
($rc, $out, $err) = run_server('--bench', '--random-weights', '--config', "$root/no/such/config.json");
is($rc, 1, 'a missing config file exits 1');
like($err, qr/config/, 'and names the problem');

($rc, $out, $err) = run_server('--bench', '--random-weights', '--config', $config, '--weights', 'bf16');
is($rc, 1, 'bf16 weights on the CPU are refused');
like($err, qr/bf16 weights need the GPU/, 'and the message says why');
($rc, $out, $err) = run_server('--bench', '--random-weights', '--config', $config, '--weights', 'int4');
is($rc, 1, 'an unknown weight type is refused');
like($err, qr/f32, bf16, f16 or int8/, 'naming the choices');

# The real configuration in f32 on a machine with less memory than its weights: a clear refusal, no OOM kill.
open(my $mi, '<', '/proc/meminfo');
my ($kb) = join('', <$mi>) =~ /MemTotal:\s+(\d+) kB/;
SKIP: {
    skip('this machine has room for the real f32 weights: nothing to refuse', 2) unless $kb && $kb * 1024 < 29e9;
    ($rc, $out, $err) = run_server('--bench', '--random-weights', '--config', 'real');
    is($rc, 1, 'the real configuration on a small machine fails cleanly');
    like($err, qr/more than this machine's .* GB of memory/, 'saying how much memory it would need');
}

done_testing();
