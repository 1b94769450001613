# groma-server --device cuda on the CUDA emulator (build/emu/groma-server,
# `make emu`): the real kernels/*.cu run on the CPU, so the GPU path of the
# whole program is exercised without a GPU.  Regions and generated ids
# equal the CPU run's; a sticky fault exits 3; running out of device memory
# and having no device are clean errors.  The emulator checks logic, not
# the GPU's speed or rounding (see test/emu/emu_api.h).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;

use POSIX qw(uname);
plan(skip_all => 'the CUDA emulator needs x86-64 (its fibers switch x86-64 registers)') if (uname())[4] ne 'x86_64';
my $emu = "$root/build/emu/groma-server";
ok(-x $emu, "$emu is built") or BAIL_OUT('run `make emu` first');
my $model = "$root/test/golden/tiny-groma";
my $image = "$root/test/golden/images/synthetic_333x251.jpg";

# Runs the emulated groma-server (environment additions first, as name => value).
sub run_emu {
    my ($env, @args) = @_;
    local %ENV = (%ENV, %$env);
    local $GromaCli::server = $emu;
    return run_server(@args);
}

# The (box, score) lines of a --regions JSON output.
sub regions_of {
    my ($json) = @_;
    return [ $json =~ /"box": \[([^\]]*)\], "score": ([0-9.]+)/g ];
}

my ($rc, $out, $err) = run_emu({}, '--device-info');
like($out . $err, qr/groma CUDA emulator/, '--device-info names the emulated device');

($rc, $out, $err) = run_emu({}, '--model', $model, '--regions', $image, '--device', 'cuda', '--weights', 'f32');
is($rc, 0, '--regions --device cuda (f32) exits 0') or diag($err);
my ($crc, $cpu) = run_server('--model', $model, '--regions', $image);
my ($gpu_r, $cpu_r) = (regions_of($out), regions_of($cpu));
ok(@$cpu_r > 0, 'the CPU run keeps regions');
is(scalar(@$gpu_r), scalar(@$cpu_r), 'the emulated GPU keeps as many regions as the CPU');
my $max = 0;
for my $i (0 .. $#$cpu_r) {
    my @a = split /,\s*/, $gpu_r->[$i] // '';
    my @b = split /,\s*/, $cpu_r->[$i];
    for my $j (0 .. $#b) { my $d = abs(($a[$j] // 1e9) - $b[$j]); $max = $d if $d > $max; }
}
cmp_ok($max, '<=', 0.011, "boxes and scores equal the CPU's to the printed precision (max difference $max)");

($rc, $out, $err) = run_emu({}, '--model', $model, '--image', $image, '--task', 'caption', '--max-new-tokens', '8',
                            '--device', 'cuda', '--weights', 'f32');
is($rc, 0, '--image --device cuda (f32) exits 0') or diag($err);
my ($g_ids) = $out =~ /"generated_ids": \[([^\]]*)\]/s;
(undef, $cpu) = run_server('--model', $model, '--image', $image, '--task', 'caption', '--max-new-tokens', '8');
my ($c_ids) = $cpu =~ /"generated_ids": \[([^\]]*)\]/s;
ok(defined $c_ids && length $c_ids, 'the CPU run generates ids');
is(join(',', split /\s*,\s*/, $g_ids // ''), join(',', split /\s*,\s*/, $c_ids // ''),
   'the emulated GPU generates the same 8 ids');

# Decode steps replayed from a graph: the trace marks the replayed launches, graphs off gives the same ids,
# and a sticky fault inside a replay exits 3 like any other.
($rc, $out, $err) = run_emu({ GROMA_EMU_TRACE => 1 }, '--model', $model, '--image', $image, '--task', 'caption',
                            '--max-new-tokens', '8', '--device', 'cuda', '--weights', 'f32');
is($rc, 0, 'the traced caption exits 0') or diag($err);
my @replayed = $err =~ /launch (\d+): \w+ .*\(graph\)$/mg;
cmp_ok(scalar(@replayed), '>', 0, 'decode steps run as replayed graphs (' . scalar(@replayed) . ' kernel runs)');
my ($t_ids) = $out =~ /"generated_ids": \[([^\]]*)\]/s;
is(join(',', split /\s*,\s*/, $t_ids // ''), join(',', split /\s*,\s*/, $c_ids // ''), 'with the CPU ids');
($rc, $out, $err) = run_emu({ GROMA_DECODE_GRAPHS => 0, GROMA_EMU_TRACE => 1 }, '--model', $model, '--image', $image,
                            '--task', 'caption', '--max-new-tokens', '8', '--device', 'cuda', '--weights', 'f32');
my ($e_ids) = $out =~ /"generated_ids": \[([^\]]*)\]/s;
is(join(',', split /\s*,\s*/, $e_ids // ''), join(',', split /\s*,\s*/, $c_ids // ''),
   'GROMA_DECODE_GRAPHS=0 gives the same ids');
unlike($err, qr/\(graph\)$/m, 'and replays no graph');
SKIP: {
    skip 'no replayed launch to fault', 2 unless @replayed;
    ($rc, $out, $err) = run_emu({ GROMA_EMU_FAULT_AT_LAUNCH => $replayed[-3] }, '--model', $model, '--image', $image,
                                '--task', 'caption', '--max-new-tokens', '8', '--device', 'cuda', '--weights', 'f32');
    is($rc, 3, "a sticky fault in replayed launch $replayed[-3] exits 3 for the supervisor") or diag($err);
    like($err, qr/restart the process/, 'saying the process must restart');
}

($rc, $out, $err) = run_emu({}, '--model', $model, '--regions', $image, '--device', 'cuda');
is($rc, 0, '--regions with the default bf16 matrices exits 0') or diag($err);
like($out, qr/"box": \[/, 'and returns regions');

# The benchmark's GPU path (random weights generated on the device, bf16 matrices) on the tiny configuration,
# with the per-op profile on (GROMA_CUDA_PROFILE: CUDA events around every op); batch 1 only (the larger batches
# took most of this file's 7 minutes on the emulator)
($rc, $out, $err) = run_emu({ GROMA_CUDA_PROFILE => 1 }, '--bench', '--random-weights', '--config',
                            "$model/config.json", '--device', 'cuda', '--bench-max-batch', '1');
is($rc, 0, '--bench --device cuda on the tiny configuration exits 0') or diag($err);
for my $f (qw(build_ms copy_bandwidth dinov2_ms proposer_ms region_encoder_ms prefill_ms decode_step_ms
              decode_tokens_per_s activation_peak_mb)) {
    like($out, qr/^\{"figure": "$f", "value": [0-9.]+/m, "the emulated GPU bench prints $f");
}
like($out, qr/"figure": "device", "name": "groma CUDA emulator/, 'and names the emulated device');
like($out, qr/"figure": "decode_step_ms_batch_1"/, 'it measures decode at batch 1');
unlike($out, qr/"figure": "(vision_ms_per_image|decode_step_ms)_batch_(4|8|16|32|64)"/,
       'and, with --bench-max-batch 1, no larger batch');
for my $stage (qw(dinov2 proposer region_encoder prefill)) {
    like($out, qr/^\{"profile": "$stage", "gpu_ms": [0-9.]+, "per": 1, "ops": \[\{"op": "\w+", "calls": [0-9.]+, "ms": [0-9.]+\}/m,
         "GROMA_CUDA_PROFILE prints the ops of $stage");
}
# a decode step's attention is one attention_decode_rows call per layer (RoPE, KV writes and attention)
like($out, qr/^\{"profile": "decode_step", "gpu_ms": [0-9.]+, "per": 64, .*"op": "linear", "calls": [0-9.]+.*"op": "attention_decode_rows"|^\{"profile": "decode_step", "gpu_ms": [0-9.]+, "per": 64, .*"op": "attention_decode_rows".*"op": "linear"/m,
     'and the linears and attention of a decode step, per step');
like($out, qr/^\{"profile": "decode_step", .*"op": "linear_many", "calls": [0-9.]+/m,
     'q/k/v and gate/up go through linear_many');

($rc, $out, $err) = run_emu({ GROMA_EMU_FAULT_AT_LAUNCH => 40 }, '--model', $model, '--regions', $image,
                            '--device', 'cuda');
is($rc, 3, 'a sticky fault (illegal address) in launch 40 exits 3 for the supervisor') or diag($err);
like($err, qr/restart the process/, 'saying the process must restart');

($rc, $out, $err) = run_emu({ GROMA_EMU_MEMORY_MB => 8 }, '--model', $model, '--regions', $image, '--device', 'cuda');
is($rc, 1, 'a device too small for the model exits 1, no crash') or diag($err);
like($err, qr/no_memory.*cannot allocate \d+ bytes of device memory/, 'saying the device memory is short');

($rc, $out, $err) = run_emu({ GROMA_EMU_NO_DEVICE => 1 }, '--model', $model, '--regions', $image, '--device', 'cuda');
is($rc, 1, 'no GPU at all exits 1') or diag($err);
like($err, qr/no usable GPU/, 'saying there is no usable GPU');

done_testing();
