# GromaCli.pm - helpers shared by the TAP tests of groma-server.
package GromaCli;
use strict;
use warnings;
use File::Temp qw(tempdir);
use Exporter 'import';

our @EXPORT = qw(run_server tensor_bytes golden_ids $root $server);

our $root = $ENV{GROMA_SOURCE_DIR} // '.';
our $server = $ENV{GROMA_SERVER} // "$root/groma-server";
my $tmp = tempdir(CLEANUP => 1);

# Runs groma-server with arguments; returns (exit code, stdout, stderr).
sub run_server {
    my @args = @_;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>', "$tmp/stderr") or die;
        exec($server, @args) or die "exec $server: $!";
    }
    local $/;
    my $stdout = <$out> // '';
    close($out);
    my $rc = $? >> 8;
    open(my $e, '<', "$tmp/stderr") or die;
    my $stderr = <$e> // '';
    return ($rc, $stdout, $stderr);
}

# Returns the raw bytes of one tensor of a safetensors file ('' when absent).
sub tensor_bytes {
    my ($path, $name) = @_;
    open(my $f, '<:raw', $path) or return '';
    local $/;
    my $bytes = <$f>;
    my $n = unpack('Q<', substr($bytes, 0, 8));
    my $json = substr($bytes, 8, $n);
    $json =~ /"\Q$name\E":\{[^}]*"data_offsets":\[(\d+),(\d+)\]/ or return '';
    return substr($bytes, 8 + $n + $1, $2 - $1);
}

# Returns the int64 values of one tensor of a safetensors file.
sub golden_ids {
    my ($path, $name) = @_;
    return unpack('q<*', tensor_bytes($path, $name));
}

1;
