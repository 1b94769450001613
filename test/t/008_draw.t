# groma-server --draw and the DRAW frame: boxes and labels drawn on a JPEG
# give a JPEG of the same size whose label background has the palette's first
# colour (read back through --decode's resized_rgb), bad input and bad usage
# give exit codes 1 and 2, and a socket client gets the same bytes as the
# command line.  Pixel-exact checks of edges are in test/unit/test_draw.c.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;
use GromaProto;
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my $tmp = tempdir(CLEANUP => 1);
chmod 0700, $tmp;
my $image = "$root/test/golden/images/synthetic_333x251.jpg";
my $img = do { local $/; open(my $f, '<:raw', $image) or die; <$f> };
my $label = ' ' x 20;    # blank: the label is all background, 121 x 9 pixels at the box's corner

# Returns the [r, g, b] of pixel x,y of an image's 448x448 resized copy (groma-server --decode).
sub resized_pixel {
    my ($path, $x, $y) = @_;
    my ($rc) = run_server('--decode', $path, '--out', "$tmp/px.safetensors");
    return [] if $rc != 0;
    my $rgb = tensor_bytes("$tmp/px.safetensors", 'resized_rgb');
    return [unpack('C3', substr($rgb, 3 * (448 * $y + $x), 3))];
}

# Returns true when two colours are within tol on every channel.
sub near {
    my ($a, $b, $tol) = @_;
    return 0 unless @$a == 3;
    return !grep { abs($a->[$_] - $b->[$_]) > $tol } 0 .. 2;
}

# ---- the command line
my ($rc, $out, $err) = run_server('--draw', $image, '--box', '20,20,300,200', '--label', $label,
    '--box', '250,10,200,240', '--out', "$tmp/drawn.jpg");
is($rc, 0, '--draw exits 0') or diag($err);
like($out, qr/"width": 333, "height": 251, "boxes": 2/, 'and prints the size and the box count');
my $drawn = slurp("$tmp/drawn.jpg");
is(substr($drawn, 0, 2), "\xFF\xD8", 'the output is a JPEG');
isnt($drawn, $img, 'that differs from the input');
($rc, $out) = run_server('--info', "$tmp/drawn.jpg");
like($out, qr/"width": 333, "height": 251/, 'of the same size');
like($out, qr/"subsampling": "4:4:4"/, 'with full-resolution colour');

# the label background (original x 20..141, y 20..29) at its middle, in the resized copy
my $red = resized_pixel("$tmp/drawn.jpg", int(80 * 448 / 333), int(25 * 448 / 251));
ok(near($red, [255, 0, 0], 40), 'the first label background is red') or diag("@$red");
my ($inside, $before) = map { resized_pixel($_, int(120 * 448 / 333), int(120 * 448 / 251)) } ("$tmp/drawn.jpg", $image);
ok(near($inside, $before, 20), 'inside the box the image is unchanged') or diag("@$inside vs @$before");

($rc, $out) = run_server('--draw', $image, '--out', "$tmp/plain.jpg");
is($rc, 0, 'no boxes: the image is re-encoded');
($rc, $out) = run_server('--info', "$tmp/plain.jpg");
like($out, qr/"width": 333, "height": 251/, 'at its size');

($rc, $out, $err) = run_server('--draw', $image, '--box', 'nan,1,2,3', '--out', "$tmp/x.jpg");
is($rc, 1, 'a NaN corner is refused (exit 1)');
like($err, qr/NaN/, 'saying why');
($rc, $out, $err) = run_server('--draw', "$root/test/fixtures/not_jpeg.png", '--out', "$tmp/x.jpg");
is($rc, 1, 'a PNG is refused (exit 1)');
($rc) = run_server('--draw', $image, '--label', 'x', '--box', '1,2,3,4', '--out', "$tmp/x.jpg");
is($rc, 2, 'a --label before its --box is a usage error');
($rc) = run_server('--draw', $image, '--box', '1,2,3', '--out', "$tmp/x.jpg");
is($rc, 2, 'a box of three numbers is a usage error');
($rc) = run_server('--draw', $image, '--box', '1,2,3,4');
is($rc, 2, '--draw without --out is a usage error');

# ---- the socket: a server without a model draws too
my $sock = "$tmp/s.sock";
my $pid = spawn_server($server, $sock, "$tmp/serve.log", '--log-level', 'debug');
ok(wait_for_socket($sock, 20), 'the server listens') or diag(slurp("$tmp/serve.log"));
my $c = proto_connect($sock);
print $c draw_frame(7, $img, [[20, 20, 300, 200], [250, 10, 200, 240]], [$label, '']);
my $r = read_reply($c, 20);
is($r->{code}, 0, 'a DRAW request is answered') or diag($r->{message});
my ($w, $h, $n) = unpack('l<l<V', $r->{rest});
is_deeply([$w, $h], [333, 251], 'with the image size');
my $jpeg = substr($r->{rest}, 12, $n);
is(length($jpeg), $n, 'and the whole JPEG');
ok($jpeg eq $drawn, 'the same bytes as the command line');
print $c draw_frame(8, $img, [[0, 0, 9**9**9 - 9**9**9, 5]], undef);
$r = read_reply($c, 20);
is($r->{code}, 1, 'a NaN box is refused as an invalid argument');
print $c draw_frame(9, $img, [], undef);
$r = read_reply($c, 20);
is($r->{code}, 0, 'no boxes is answered too');
close($c);

# A 7000x7000 JPEG that is slow to decode (GromaProto::flat_jpeg): a client that goes away
# stops its drawing's decode, as it stops an image check.
$c = proto_connect($sock);
print $c draw_frame(10, flat_jpeg(7000), [[10, 10, 100, 100]], ['x']);
sleep 0.05;
close($c);
my $t0 = time;
my $stopped = '';
while (time - $t0 < 10) {
    if (slurp("$tmp/serve.log") =~ /request 10 draw image=\d+B boxes=1 (\w+)/) { $stopped = $1; last; }
    sleep 0.01;
}
is($stopped, 'cancelled', sprintf('a client that goes away stops its drawing (ended %.0f ms after the close)',
    1000 * (time - $t0)));
kill 'TERM', $pid;
my $until = time + 10;
my $gone = 0;
while (time < $until) {
    if (waitpid($pid, WNOHANG) == $pid) { $gone = 1; last; }
    sleep 0.05;
}
ok($gone, 'the server stops on SIGTERM');

done_testing();
