# groma-server --model DIR --regions IMG on the bundled tiny model: the boxes
# the golden run keeps, in pixels of the original image clipped to it, and clear errors for
# bad refer boxes.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;
use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);

my $model = "$root/test/golden/tiny-groma";
my $tmp = tempdir(CLEANUP => 1);

# The golden run keeps 15 boxes for the synthetic image (sel.noref.kept_indices).
my ($rc, $out, $err) = run_server('--model', $model, '--regions', "$root/test/golden/images/synthetic_333x251.jpg");
is($rc, 0, '--regions exits 0') or diag($err);
my $res = decode_json($out);
is("$res->{width}x$res->{height}", '333x251', 'reports the original image size');
is(scalar(@{$res->{regions}}), 15, 'keeps the 15 regions of the golden run');
my @scores = map { $_->{score} } @{$res->{regions}};
is_deeply([sort { $b <=> $a } @scores], \@scores, 'regions come in descending score order');
ok((grep { $_ <= 0.15 } @scores) == 0, 'every kept score is above the 0.15 threshold');

# Boxes are clipped to the image (the model's own may reach outside it), so
# each can be given back as a refer box, which must lie inside the image.
my @outside = grep { $_->{box}[0] < 0 || $_->{box}[1] < 0 || $_->{box}[2] > 333 || $_->{box}[3] > 251 }
  @{$res->{regions}};
is(scalar(@outside), 0, 'every box lies inside the 333x251 image');
my ($edge) = grep { $_->{box}[0] == 0 } @{$res->{regions}};
ok($edge, 'some box was clipped at the left edge');
($rc, $out, $err) = run_server('--model', $model, '--regions', "$root/test/golden/images/synthetic_333x251.jpg",
    '--refer', join(',', @{$edge->{box}}));
is($rc, 0, 'a clipped box is accepted back as --refer') or diag($err);

# --embeddings adds each region's feature before the up-projection (32 wide
# for the tiny model, 1024 for the real one), the same on every run.
ok(!exists $res->{regions}[0]{embedding}, 'no embeddings unless asked for');
my @runs;
for (1 .. 2) {
    ($rc, $out, $err) = run_server('--model', $model, '--regions', "$root/test/golden/images/synthetic_333x251.jpg",
        '--embeddings');
    is($rc, 0, '--embeddings exits 0') or diag($err);
    push @runs, decode_json($out);
}
is_deeply([map { scalar(@{$_->{embedding}}) } @{$runs[0]{regions}}], [(32) x 15], 'one 32-value embedding per region');
is_deeply($runs[1], {%{$runs[0]}, timing_ms => $runs[1]{timing_ms}}, 'and the same regions and embeddings on a second run');

# A refer box is kept with score 1 and matched to itself.
($rc, $out, $err) = run_server('--model', $model, '--regions', "$root/test/golden/images/synthetic_333x251.jpg",
    '--refer', '100,50,200,150');
is($rc, 0, '--refer exits 0') or diag($err);
$res = decode_json($out);
my $first = $res->{regions}[0];
is(join(',', map { sprintf('%.2f', $_) } @{$first->{box}}) . " $first->{score} " . ($first->{refer} ? 'refer' : ''),
    '100.00,50.00,200.00,150.00 1 refer', 'the refer box comes first with score 1, in pixels');
is_deeply($res->{refer_match}, [0], 'and is matched to itself');

for my $bad (['nan,0,10,10', 'not a finite number'], ['10,10,10,20', 'zero or negative'],
             ['20,10,10,20', 'zero or negative'], ['0,0,400,10', 'not inside']) {
    ($rc, $out, $err) = run_server('--model', $model, '--regions', "$root/test/golden/images/synthetic_333x251.jpg",
        '--refer', $bad->[0]);
    is($rc, 1, "refer box $bad->[0] is refused");
    like($err, qr/\Q$bad->[1]\E/, "with a clear message ($bad->[1])");
}
($rc, $out, $err) = run_server('--model', $model, '--regions', "$root/test/golden/images/synthetic_333x251.jpg",
    '--refer', '1,2,3');
is($rc, 2, 'a malformed --refer is a usage error');
($rc, $out, $err) = run_server('--model', "$tmp/no-such-model", '--regions', "$root/test/golden/images/synthetic_333x251.jpg");
is($rc, 1, 'a missing model folder exits 1');
($rc, $out, $err) = run_server('--model', $model, '--regions', "$root/test/fixtures/not_jpeg.png");
is($rc, 1, 'a PNG exits 1');
like($err, qr/PNG/, 'and says why');

# --device: an unknown one is a usage error; cuda runs where a GPU is present, else fails clearly.
($rc, $out, $err) = run_server('--model', $model, '--regions', "$root/test/golden/images/synthetic_333x251.jpg",
    '--device', 'tpu');
is($rc, 2, '--device tpu is a usage error');
my (undef, $info) = run_server('--device-info');
($rc, $out, $err) = run_server('--model', $model, '--regions', "$root/test/golden/images/synthetic_333x251.jpg",
    '--device', 'cuda');
if ($info =~ /"cuda_devices": [1-9]/) {
    is($rc, 0, '--device cuda runs on the GPU') or diag($err);
    is(scalar(@{decode_json($out)->{regions}}), 15, 'and keeps the same 15 regions');
} else {
    is($rc, 1, '--device cuda without a usable GPU exits 1');
    like($err, qr/without CUDA|no usable GPU/, 'and says why');
    if ($info =~ /"cuda_built": true/ && !-e '/dev/nvidiactl') {
        like($err, qr/no GPU found: no NVIDIA driver is loaded/,
            'on a machine without the NVIDIA driver it says no GPU was found (not a driver-version error)');
    }
}

done_testing();
