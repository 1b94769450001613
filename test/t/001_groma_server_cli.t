# groma-server's command line: --decode writes the documented safetensors
# file, --info prints JSON, bad input and bad usage give exit codes 1 and 2.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;
use File::Temp qw(tempdir);

my $tmp = tempdir(CLEANUP => 1);

# Reads a safetensors header: returns (hashref of name => "DTYPE[shape]", metadata hashref, data size).
sub read_safetensors {
    my ($path) = @_;
    open(my $f, '<:raw', $path) or return;
    local $/;
    my $bytes = <$f>;
    my $n = unpack('Q<', substr($bytes, 0, 8));
    my $json = substr($bytes, 8, $n);
    my %t;
    while ($json =~ /"([^"]+)":\{"dtype":"(\w+)","shape":\[([\d,]*)\]/g) {
        $t{$1} = "$2\[$3]";
    }
    my %meta = ($json =~ /"(original_\w+|device)":"([^"]*)"/g);
    return (\%t, \%meta, length($bytes) - 8 - $n);
}

my ($rc, $out, $err) = run_server('--version');
is($rc, 0, '--version exits 0');
like($out, qr/^groma-server \d+\.\d+/, '--version prints the version');

($rc, $out, $err) = run_server('--decode', "$root/test/golden/images/waterview.jpg", '--out', "$tmp/w.safetensors");
is($rc, 0, '--decode of a golden image exits 0') or diag($err);
my ($tensors, $meta, $data_bytes) = read_safetensors("$tmp/w.safetensors");
is($tensors->{pixel_values}, 'F32[3,448,448]', 'pixel_values is F32 [3,448,448]');
is($tensors->{resized_rgb}, 'U8[448,448,3]', 'resized_rgb is U8 [448,448,3]');
is($data_bytes, 3 * 448 * 448 * 4 + 448 * 448 * 3, 'data section holds exactly both tensors');
is($meta->{original_width}, '1000', 'metadata keeps the original width');
is($meta->{original_height}, '667', 'metadata keeps the original height');

# --decode output equals the golden PIL tensors for every golden image.
for my $case (['extreme_ironing.jpg', 'extreme_ironing'], ['synthetic_333x251.jpg', 'synthetic'],
              ['waterview.jpg', 'waterview']) {
    my ($image, $name) = @$case;
    my $golden = "$root/test/golden/compact/case_$name.safetensors";
    ($rc) = run_server('--decode', "$root/test/golden/images/$image", '--out', "$tmp/$name.safetensors");
    my $got = tensor_bytes("$tmp/$name.safetensors", 'resized_rgb');
    my $want = tensor_bytes($golden, 'image.resized_rgb');
    ok($rc == 0 && length($want) == 448 * 448 * 3 && $got eq $want, "--decode $image: resized_rgb equals PIL's bytes");
    # pixel_values: HF rescale (double, then float32) and normalise in float32, within 1e-6.
    my @mean = (0.485, 0.456, 0.406);
    my @std = (0.229, 0.224, 0.225);
    my @px = unpack('f<*', tensor_bytes("$tmp/$name.safetensors", 'pixel_values'));
    my @rgb = unpack('C*', $want);
    my $max = @px == 3 * 448 * 448 ? 0 : 1e9;
    for my $i (0 .. $#rgb) {
        my ($pix, $c) = (int($i / 3), $i % 3);
        my $expect = ($rgb[$i] / 255.0 - $mean[$c]) / $std[$c];
        my $d = abs($px[$c * 448 * 448 + $pix] - $expect);
        $max = $d if $d > $max;
    }
    ok($max <= 1e-6, "--decode $image: pixel_values within 1e-6 of the normalised golden image (max $max)");
}

($rc, $out, $err) = run_server('--info', "$root/test/golden/images/synthetic_333x251.jpg");
is($rc, 0, '--info exits 0');
like($out, qr/"width": 333, "height": 251, "components": 3, "colorspace": "ycbcr", "subsampling": "4:2:0", "progressive": true/,
    '--info prints the header facts as JSON');

($rc, $out, $err) = run_server('--decode', "$root/test/fixtures/not_jpeg.png", '--out', "$tmp/x.safetensors");
is($rc, 1, 'a PNG exits 1');
like($err, qr/not_jpeg.*PNG/, 'and says it is a PNG');
ok(!-e "$tmp/x.safetensors", 'and writes no output file');

($rc, $out, $err) = run_server('--decode', "$root/test/fixtures/many_scans.jpg", '--out', "$tmp/x.safetensors");
is($rc, 1, 'thousands of scans exit 1');
like($err, qr/more than \d+ scans/, 'and name the scan limit');

($rc, $out, $err) = run_server('--max-image-pixels', '1000', '--info', "$root/test/golden/images/waterview.jpg");
is($rc, 1, '--max-image-pixels lowers the limit');
like($err, qr/over the limit of 1000 pixels/, 'and the error names it');

($rc, $out, $err) = run_server('--decode', "$tmp/does-not-exist.jpg", '--out', "$tmp/x.safetensors");
is($rc, 1, 'a missing file exits 1');
like($err, qr/cannot open/, 'and says so');

($rc, $out, $err) = run_server('--decode', "$root/test/golden/images/waterview.jpg");
is($rc, 2, '--decode without --out is a usage error');
($rc, $out, $err) = run_server('--bogus');
is($rc, 2, 'an unknown option is a usage error');
($rc, $out, $err) = run_server('--max-image-pixels', '-5', '--info', 'x');
is($rc, 2, 'a negative pixel limit is a usage error');
($rc, $out, $err) = run_server('--decode', "$root/test/golden/images/waterview.jpg", '--out', "$tmp/y", '--device', 'tpu');
is($rc, 2, 'an unknown device is a usage error');
($rc, $out, $err) = run_server('--device-id', '1025', '--info', 'x');
is($rc, 2, '--device-id 1025 is a usage error');
like($err, qr/--device-id needs an integer in 0\.\.1024/, 'whose message gives the range from 0 (0 is taken)');

($rc, $out, $err) = run_server('--device-info');
is($rc, 0, '--device-info exits 0');
like($out, qr/"cuda_built": (true|false), "cuda_devices": \d+/, '--device-info prints JSON');

done_testing();
