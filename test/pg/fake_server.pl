#!/usr/bin/perl
# fake_server.pl - a stand-in for groma-server --serve that the launcher can
# run (groma.server_path) to test replies the tiny model never gives:
# grounded answers, a full queue, loading progress, a failed model, another
# protocol version, garbage, and an exit in the middle of a request.
#
# It takes groma-server's command line; --model names the behaviour:
#   groundings  GENERATE answers a fixed text with two grounded phrases
#   busy        GENERATE is refused as busy
#   loading     STATUS says loading (100 of 400 MB), GENERATE is unavailable
#   failed      STATUS says failed, GENERATE is unavailable with the reason
#   stopping    GENERATE is unavailable: shutting down; from then on STATUS gets its connection hung up,
#               as a server shutting down takes no new request
#   version9    every reply header says protocol version 9; a GENERATE is answered and its connection closed as
#               soon as its header arrives (as groma-server answers a frame of another version), its payload unread
#   garbage     every reply is 16 bytes that are not a frame header
#   exit3       exits with code 3 when it receives a GENERATE
#   loading-0   as loading for --device-id 0 (server 0 of groma.devices = '0,1'), as groundings for any other
#   reset       closes a connection when a GENERATE header arrives, its payload unread (the client's read is
#               reset, as when a killed server's socket closes before reading the request)
#   reset-0     as reset for --device-id 0, as groundings for any other
#   exit-unread exits with code 3 when a GENERATE header arrives, its payload (and every other request) unread,
#               the first time only (it leaves the file SOCKET.exited beside its socket): after its restart it
#               answers as groundings
#   busy-0      as busy for --device-id 0, as groundings for any other
# PING, STATUS and VALIDATE are answered in every mode but version9/garbage.
use strict;
use warnings;
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Getopt::Long qw(:config pass_through);
use POSIX ();

my ($socket_path, $mode, $watch_fd, $device_id, $beacon_fd) = ('', '', -1, -1, -1);
GetOptions('socket=s' => \$socket_path, 'model=s' => \$mode, 'watch-fd=i' => \$watch_fd, 'device-id=i' => \$device_id,
           'beacon-fd=i' => \$beacon_fd);
# (the modes of one server of two write no state into the beacon: both look starting, so that calls go to both
# and server 0's answers are what moves them)
my $writes_beacon = $mode !~ /-0$/;
$mode = $device_id == 0 ? 'loading' : 'groundings' if $mode eq 'loading-0';
$mode = $device_id == 0 ? 'reset' : 'groundings' if $mode eq 'reset-0';
$mode = $device_id == 0 ? 'busy' : 'groundings' if $mode eq 'busy-0';
$mode = 'groundings' if $mode eq 'exit-unread' && -e "$socket_path.exited";
$| = 1;
$SIG{TERM} = sub { print STDERR "info: fake server stopping\n"; unlink $socket_path; exit 0; };
$SIG{PIPE} = 'IGNORE';
# the launcher starts its server with SIGTERM and SIGINT blocked: like groma-server, take them once handled
POSIX::sigprocmask(POSIX::SIG_UNBLOCK(), POSIX::SigSet->new(POSIX::SIGTERM(), POSIX::SIGINT()));

unlink $socket_path;
my $listen = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $socket_path, Listen => 64)
  or die "cannot listen on $socket_path: $!";
my $sel = IO::Select->new($listen);
my $watch;
if ($watch_fd >= 0) {
    open($watch, '<&=', $watch_fd) or die "watch fd $watch_fd: $!";
    $sel->add($watch);
}
print STDERR "info: fake server listening on $socket_path in mode '$mode'\n";
my ($served, $failed) = (0, 0);
my %buf;
my $shutting_down = 0;    # mode stopping, after its first GENERATE

my %state_of = (loading => 1, failed => 4, '' => 3);

# Writes the state STATUS reports into the beacon the launcher shares (--beacon-fd), as groma-server does: the
# 32-bit field after seq, watchdog_ms, call_since_ms, n_in_call and 256 in_call entries (protocol.h).
if ($beacon_fd >= 0 && $writes_beacon) {
    open(my $beacon, '+<&=', $beacon_fd) or die "beacon fd $beacon_fd: $!";
    sysseek($beacon, 4 + 4 + 8 + 4 + 256 * 8, 0) or die "beacon seek: $!";
    syswrite($beacon, pack('l<', $state_of{$mode} // 2)) == 4 or die "beacon write: $!";
}
sub str { my ($s) = @_; return pack('V', length($s)) . $s; }

# Returns a reply frame for request kind with status code, message and payload fields.
sub reply {
    my ($kind, $id, $code, $message, $fields) = @_;
    my $payload = pack('vV', $kind, $code) . str($message) . ($code == 0 ? $fields // '' : '');
    my $version = $mode eq 'version9' ? 9 : 6;
    return pack('VvvVV', 0x414d5247, $version, 100, $id, length($payload)) . $payload;
}

# Returns the STATUS fields.
sub status_fields {
    my $state = $state_of{$mode} // 2;
    return pack('V', $state) . str($mode) . str('fake') . pack('Q<Q<VVQ<Q<', 100 << 20, 400 << 20, 0, 0, $served, $failed)
      . pack('VVQ<Q<', 0, 16, 0, 64 << 20) . str('int8') . pack('Q<Q<', 7, 3);
}

# Returns the GENERATE fields of the grounded answer.
sub generate_fields {
    my $text = 'A man irons clothes on a taxi.';
    my $g = str('A man') . pack('l<l<V', 0, 5, 1) . pack('d<4', 10, 20, 110, 220)
      . str('a taxi') . pack('l<l<V', 23, 29, 2) . pack('d<8', 1, 2, 3, 4, 7.5, 8, 5, 6);
    return pack('l<l<', 640, 480) . pack('V', 2) . str($text) . pack('V', 2) . $g
      . pack('V', 3) . pack('l<3', 5, 6, 7) . pack('C', 1) . pack('l<', 42) . pack('d<2', 1.5, 2.5)
      . pack('d<8', 0, 0, 0, 0, 0, 0, 0, 0);
}

# Answers one request frame on connection c.
sub answer {
    my ($c, $kind, $id) = @_;
    if ($mode eq 'garbage') {
        print $c "this is no frame";
        return;
    }
    if ($kind == 1) { print $c reply(1, $id, 0, '', ''); }
    elsif ($kind == 2 && $shutting_down) { $c->shutdown(2); }    # a server shutting down takes no status request
    elsif ($kind == 2) { print $c reply(2, $id, 0, '', status_fields()); }
    elsif ($kind == 3) { print $c reply(3, $id, 0, '', pack('l<l<', 640, 480)); }
    elsif ($kind == 5) {
        if ($mode eq 'exit3') { print STDERR "error: fake server exits in the middle of a request\n"; exit 3; }
        if ($mode eq 'busy') { $failed++; print $c reply(5, $id, 13, "groma-server's queue is full (64 requests wait)"); }
        elsif ($mode eq 'loading') { $failed++; print $c reply(5, $id, 14, 'groma-server is loading the model'); }
        elsif ($mode eq 'failed') { $failed++; print $c reply(5, $id, 14, 'the model failed to load: fake reason'); }
        elsif ($mode eq 'stopping') {
            $failed++;
            $shutting_down = 1;
            print $c reply(5, $id, 14, 'groma-server is shutting down');
        }
        else { $served++; print $c reply(5, $id, 0, '', generate_fields()); }
    }
    elsif ($kind != 6) { print $c reply($kind, $id, 15, "unexpected request kind $kind"); }
}

while (1) {
    for my $fh ($sel->can_read) {
        if ($fh == $listen) {
            my $c = $listen->accept or next;
            $c->autoflush(1);
            $sel->add($c);
            $buf{$c} = '';
            next;
        }
        if (defined $watch && $fh == $watch) {
            my $n = sysread($watch, my $x, 64);
            if (!$n) { print STDERR "info: the launcher is gone\n"; unlink $socket_path; exit 0; }
            next;
        }
        # (modes reset, version9 and exit-unread read a header at a time, to close with a GENERATE's payload unread)
        my $early = $mode eq 'reset' || $mode eq 'version9' || $mode eq 'exit-unread';
        my $n = sysread($fh, my $data, $early ? 16 : 65536);
        if (!$n) { $sel->remove($fh); delete $buf{$fh}; close($fh); next; }
        $buf{$fh} .= $data;
        if ($early && length($buf{$fh}) >= 16 && (unpack('VvvVV', $buf{$fh}))[2] == 5) {
            if ($mode eq 'exit-unread') {
                open(my $mark, '>', "$socket_path.exited") or die "$socket_path.exited: $!";
                close($mark);
                print STDERR "error: fake server exits before it reads a request\n";
                POSIX::_exit(3);
            }
            $failed++;
            print $fh reply(5, (unpack('VvvVV', $buf{$fh}))[3], 15, 'this side speaks protocol version 9')
              if $mode eq 'version9';
            $sel->remove($fh);
            delete $buf{$fh};
            close($fh);
            next;
        }
        while (length($buf{$fh}) >= 16) {
            my ($magic, $version, $kind, $id, $len) = unpack('VvvVV', $buf{$fh});
            last if length($buf{$fh}) < 16 + $len;
            substr($buf{$fh}, 0, 16 + $len) = '';
            answer($fh, $kind, $id);
        }
    }
}
