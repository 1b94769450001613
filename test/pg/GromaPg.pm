# GromaPg.pm - helpers shared by the TAP tests of groma inside PostgreSQL
# (test/pg/*.t): a cluster with groma preloaded and the tiny model, queries
# run in the background with IPC::Run, polling, and step timings.
#
# Run as the cluster's owner (initdb refuses root), with PostgreSQL's bin
# directory on PATH and GROMA_SOURCE_DIR naming the source tree; groma.so,
# the extension files and groma-server must be installed.
package GromaPg;
use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use Test::More;
use Time::HiRes qw(time sleep);

our @EXPORT = qw(groma_node image_sql marked_image_sql wait_until status_row step start_query finish_query
  proc_alive count_caption_writes $root $model);

our $root = $ENV{GROMA_SOURCE_DIR} // '.';
our $model = "$root/test/golden/tiny-groma";

# PostgreSQL::Test::Cluster runs "pg_regress --config-auth" at init (a no-op
# off Windows) and initdb from PATH: find both through pg_config.
BEGIN {
    my $pgxs = `pg_config --pgxs 2>/dev/null`;
    chomp $pgxs;
    (my $regress = $pgxs) =~ s{/src/makefiles/pgxs\.mk$}{/src/test/regress/pg_regress};
    $ENV{PG_REGRESS} //= $regress;
    my $bindir = `pg_config --bindir 2>/dev/null`;
    chomp $bindir;
    $ENV{PATH} = "$bindir:$ENV{PATH}" if $bindir ne '' && index($ENV{PATH}, $bindir) < 0;
}
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

my $t_start = time;
my $t_last = $t_start;

# Prints how long the step since the previous call took (and the total so far).
sub step {
    my ($what) = @_;
    my $now = time;
    note(sprintf("time: %-60s %8.3f s (at %7.3f s)", $what, $now - $t_last, $now - $t_start));
    $t_last = $now;
}

# Returns a SQL expression reading one of the golden images.
sub image_sql {
    my ($name) = @_;
    $name //= 'synthetic_333x251.jpg';
    return "pg_read_binary_file('$root/test/golden/images/$name')";
}

# Returns SQL for the golden image name with a JPEG comment holding words (right after its SOI marker): the test
# hooks of groma-server (GROMA_SERVER_TEST_CRASH, GROMA_SERVER_TEST_STALL) act on images marked so.
sub marked_image_sql {
    my ($name, $words) = @_;
    my $img = image_sql($name);
    return "(SELECT substring(i FROM 1 FOR 2) || '\\xfffe'::bytea || int2send((2 + length('$words'))::int2)
                    || convert_to('$words', 'UTF8') || substring(i FROM 3) FROM (SELECT $img AS i) s)";
}

# Polls code every 50 ms until it returns true or secs pass; returns the last value.
sub wait_until {
    my ($secs, $code) = @_;
    my $until = time + $secs;
    my $v;
    while (1) {
        $v = $code->();
        return $v if $v || time >= $until;
        sleep 0.05;
    }
}

# Returns groma_status() row for server n as a hash (columns by name).
sub status_row {
    my ($node, $n) = @_;
    $n //= 0;
    my @cols = qw(server state pid device model_path restarts last_exit last_stderr queue_depth running served failed
      in_flight weights cancelled busy model_call_s);
    my $out = $node->safe_psql('postgres',
        "SELECT " . join(", ", map { "coalesce(${_}::text, '')" } @cols) . " FROM groma_status() WHERE server = $n",
        extra_params => ['-F', "\x1f"]);
    my @v = split(/\x1f/, $out, -1);
    return {} unless @v == @cols;
    my %row;
    @row{@cols} = @v;
    return \%row;
}

# Creates and starts a cluster with groma preloaded, the tiny model on the
# CPU and extra postgresql.conf lines; creates the extension and waits until
# every server is ready.  Returns the node.
sub groma_node {
    my ($name, $extra_conf, %opt) = @_;
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;
    $node->append_conf('postgresql.conf', join("\n",
        "shared_preload_libraries = 'groma'",
        "groma.model_path = '$model'",
        "groma.device = 'cpu'",
        $extra_conf // ''));
    $node->start;
    $node->safe_psql('postgres', 'CREATE EXTENSION groma');
    my $servers = $opt{servers} // 1;
    my $ready = wait_until(60, sub {
        $node->safe_psql('postgres', "SELECT count(*) FROM groma_status() WHERE state = 'ready'") == $servers });
    ok($ready, "$servers groma-server(s) ready") or diag($node->safe_psql('postgres', 'SELECT * FROM groma_status()'));
    return $node;
}

# Starts psql running sql in the background as application_name app; returns a handle for finish_query.
sub start_query {
    my ($node, $app, $sql) = @_;
    my %q = (out => '', err => '', started => time);
    my $connstr = $node->connstr('postgres') . " application_name=$app";
    $q{h} = IPC::Run::start([ 'psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-d', $connstr, '-c', $sql ],
        '<', \undef, '>', \$q{out}, '2>', \$q{err});
    return \%q;
}

# Waits up to secs for a background query to end; returns (exit code or undef on timeout, stdout, stderr, when it ended).
sub finish_query {
    my ($q, $secs) = @_;
    my $until = time + ($secs // 60);
    while ($q->{h}->pumpable && time < $until) {
        $q->{h}->pump_nb;
        sleep 0.002;
    }
    if ($q->{h}->pumpable) {
        $q->{h}->kill_kill;
        return (undef, $q->{out}, $q->{err}, time);
    }
    my $ended = time;
    $q->{h}->finish;
    return ($q->{h}->result(0), $q->{out}, $q->{err}, $ended);
}

# Returns true when pid is a live groma-server process (not a zombie, not a reused pid).
sub proc_alive {
    my ($pid) = @_;
    return 0 unless $pid && open(my $f, '<', "/proc/$pid/stat");
    my $stat = <$f> // '';
    close($f);
    return 0 unless $stat =~ /^\d+ \((.*)\) (\S)/;
    return $1 eq 'groma-server' && $2 ne 'Z';
}

# Creates the trigger function count_caption() and a BEFORE UPDATE trigger of it on table, which adds one to the
# row's times column each time its caption column changes, so that a caption written twice shows.
sub count_caption_writes {
    my ($node, $table) = @_;
    $node->safe_psql('postgres', q{CREATE OR REPLACE FUNCTION count_caption() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.caption IS DISTINCT FROM OLD.caption THEN
        NEW.times := OLD.times + 1;
    END IF;
    RETURN NEW;
END $$});
    $node->safe_psql('postgres',
        "CREATE TRIGGER count_caption BEFORE UPDATE ON $table FOR EACH ROW EXECUTE FUNCTION count_caption()");
}

1;
