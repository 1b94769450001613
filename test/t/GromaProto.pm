# GromaProto.pm - a minimal client of groma-server's socket protocol
# (src/server/protocol.h) for the TAP tests: frames built with pack.
package GromaProto;
use strict;
use warnings;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);
use POSIX ();
use Exporter 'import';

our @EXPORT = qw(proto_connect frame blob ping_frame status_frame validate_frame generate_frame regions_frame
    cancel_frame draw_frame read_reply parse_status parse_generate parse_regions wait_for_socket flat_jpeg status_of wait_exit slurp
    spawn_server server_child_io);

# A server that closes a connection first (a refused peer, a rejected
# frame) makes the next print fail with EPIPE instead of killing the test.
$SIG{PIPE} = 'IGNORE';

# In a forked child about to exec groma-server: its log to $log, and its
# stdout away from the test's (a server left behind by a test that died
# must not hold prove's pipe open).
sub server_child_io {
    my ($log) = @_;
    open(STDOUT, '>', '/dev/null') or die "/dev/null: $!";
    open(STDERR, '>', $log) or die "$log: $!";
}

# Returns a connected socket to path (undef when it cannot connect).
sub proto_connect {
    my ($path) = @_;
    return IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path);
}

# Waits up to $secs for path to accept connections; returns true when it does.
sub wait_for_socket {
    my ($path, $secs) = @_;
    my $until = time + $secs;
    while (time < $until) {
        my $s = proto_connect($path);
        return 1 if $s;
        sleep 0.05;
    }
    return 0;
}

# Returns a frame: header (magic, version, kind, id, length) and payload.
sub frame {
    my ($kind, $id, $payload, %o) = @_;
    $payload //= '';
    return pack('VvvVV', $o{magic} // 0x414d5247, $o{version} // 6, $kind, $id, $o{length} // length($payload))
        . $payload;
}

# Returns a byte string field: u32 length and the bytes.
sub blob { my ($b) = @_; return pack('V', length($b)) . $b; }

sub ping_frame { my ($id) = @_; return frame(1, $id); }
sub status_frame { my ($id) = @_; return frame(2, $id); }
sub image_fields { my ($img) = @_; return blob($img) . pack('Q<V', 50_000_000, 0); }
sub validate_frame { my ($id, $img) = @_; return frame(3, $id, image_fields($img)); }
sub regions_frame { my ($id, $img) = @_; return frame(4, $id, image_fields($img) . pack('l<f<C', 0, -1, 0)); }
sub cancel_frame { my ($id, $target) = @_; return frame(6, $id, pack('V', $target)); }

# A GENERATE frame for a free prompt with a token limit (alone: 1 to run it in model calls of its own).
sub generate_frame {
    my ($id, $img, $prompt, $tokens, $alone) = @_;
    return frame(5, $id, image_fields($img) . pack('l<', -1) . blob($prompt) . pack('l<C', $tokens, $alone // 0));
}

# A DRAW frame: boxes as [x1, y1, x2, y2] array refs, one label per box ('' or undef: none).
sub draw_frame {
    my ($id, $img, $boxes, $labels) = @_;
    my $p = image_fields($img) . pack('V', scalar @$boxes);
    $p .= pack('d<4', @$_) for @$boxes;
    $p .= blob($labels ? ($labels->[$_] // '') : '') for 0 .. $#$boxes;
    return frame(7, $id, $p);
}

# Reads exactly n bytes within timeout seconds; undef on end of file or timeout.
sub read_exact {
    my ($s, $n, $timeout) = @_;
    my $buf = '';
    my $until = time + ($timeout // 60);
    while (length($buf) < $n) {
        my $rin = '';
        vec($rin, fileno($s), 1) = 1;
        my $left = $until - time;
        return undef if $left <= 0;
        next unless select(my $rout = $rin, undef, undef, $left);
        my $got = sysread($s, $buf, $n - length($buf), length($buf));
        return undef unless $got;
    }
    return $buf;
}

# Reads one reply; returns a hash (id, kind, code, message, rest) or undef when the connection closed.
sub read_reply {
    my ($s, $timeout) = @_;
    my $h = read_exact($s, 16, $timeout) // return undef;
    my ($magic, $version, $kind, $id, $len) = unpack('VvvVV', $h);
    my $p = $len ? (read_exact($s, $len, $timeout) // return undef) : '';
    my ($rkind, $code, $mlen) = unpack('vVV', $p);
    return { id => $id, frame_kind => $kind, kind => $rkind, code => $code, message => substr($p, 10, $mlen),
        rest => substr($p, 10 + $mlen) };
}

# Decodes the fields of a successful STATUS reply.
sub parse_status {
    my ($r) = @_;
    my $rest = $r->{rest};
    my ($state, $mlen) = unpack('VV', $rest);
    my $model = substr($rest, 8, $mlen);
    $rest = substr($rest, 8 + $mlen);
    my $dlen = unpack('V', $rest);
    my $device = substr($rest, 4, $dlen);
    my ($done, $total, $queued, $running, $served, $failed, $batch, $max_batch, $kv_used, $kv_total, $wlen) =
      unpack('Q<Q<VVQ<Q<VVQ<Q<V', substr($rest, 4 + $dlen));
    my $weights = substr($rest, 4 + $dlen + 68, $wlen);
    my ($cancelled, $busy) = unpack('Q<Q<', substr($rest, 4 + $dlen + 68 + $wlen, 16));
    return { state => $state, model => $model, device => $device, queued => $queued, running => $running,
        served => $served, failed => $failed, batch => $batch, max_batch => $max_batch, kv_used => $kv_used,
        kv_total => $kv_total, weights => $weights, cancelled => $cancelled,
        busy => $busy };
}

# Decodes the fields of a successful GENERATE reply: text (bytes), groundings (count) and generated ids.
sub parse_generate {
    my ($r) = @_;
    my $rest = $r->{rest};
    my ($w, $h, $n_regions, $tlen) = unpack('l<l<VV', $rest);
    my $text = substr($rest, 16, $tlen);
    my $at = 16 + $tlen;
    my $n_groundings = unpack('V', substr($rest, $at, 4));
    $at += 4;
    for (1 .. $n_groundings) {
        my $plen = unpack('V', substr($rest, $at, 4));
        $at += 4 + $plen + 8;
        my $n_boxes = unpack('V', substr($rest, $at, 4));
        $at += 4 + 32 * $n_boxes;
    }
    my $n_ids = unpack('V', substr($rest, $at, 4));
    my @ids = unpack("l<$n_ids", substr($rest, $at + 4, 4 * $n_ids));
    return { width => $w, height => $h, regions => $n_regions, text => $text, groundings => $n_groundings,
        ids => \@ids };
}

# Decodes the fields of a successful REGIONS reply: the image's size and each region's box, score and refer flag.
sub parse_regions {
    my ($r) = @_;
    my ($w, $h, $n, $dim) = unpack('l<l<VV', $r->{rest});
    my $at = 16;
    my @regions;
    for (1 .. $n) {
        my @v = unpack('d<4f<C', substr($r->{rest}, $at, 37));
        push @regions, { box => [@v[0 .. 3]], score => $v[4], refer => $v[5] };
        $at += 37 + 4 * $dim;
    }
    return { width => $w, height => $h, regions => \@regions };
}

# Forks `server --serve --socket sock @args` with its stderr in log; returns its pid.
sub spawn_server {
    my ($server, $sock, $log, @args) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        server_child_io($log);
        exec($server, '--serve', '--socket', $sock, @args) or die "$server: $!";
    }
    return $pid;
}

# Returns the server's STATUS fields over a fresh connection ({} when it does not answer).
sub status_of {
    my ($sock) = @_;
    my $c = proto_connect($sock) or return {};
    print $c status_frame(99);
    my $r = read_reply($c, 10) or return {};
    return parse_status($r);
}

# Waits up to secs for pid to exit; returns its exit status or undef.
sub wait_exit {
    my ($pid, $secs) = @_;
    my $until = time + $secs;
    while (time < $until) {
        return $? if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.02;
    }
    return undef;
}

# Returns a file's bytes ('' when it cannot be read).
sub slurp { my ($p) = @_; open(my $f, '<:raw', $p) or return ''; local $/; return <$f> // ''; }

# Returns a valid n x n grayscale baseline JPEG whose blocks are all flat
# (two bits each): slow to decode, small to send.
sub flat_jpeg {
    my ($n) = @_;
    my $blocks = (int(($n + 7) / 8))**2;
    return "\xFF\xD8" . "\xFF\xDB" . pack('n', 67) . "\x00" . ("\x01" x 64)
        . "\xFF\xC0" . pack('n', 11) . pack('CnnC', 8, $n, $n, 1) . "\x01\x11\x00"
        . "\xFF\xC4" . pack('n', 20) . "\x00\x01" . ("\x00" x 15) . "\x00"
        . "\xFF\xC4" . pack('n', 20) . "\x10\x01" . ("\x00" x 15) . "\x00"
        . "\xFF\xDA" . pack('n', 8) . "\x01\x01\x00\x00\x3F\x00"
        . ("\x00" x int(($blocks * 2 + 7) / 8)) . "\xFF\xD9";
}

1;
