# groma-server never outlives PostgreSQL: after the postmaster is killed
# with SIGKILL the launcher exits and its servers follow (watch pipe,
# PR_SET_PDEATHSIG) within 5 s, and pg_ctl stop -m fast leaves none behind,
# nor does pg_ctl stop -m immediate or the postmaster's SIGKILL with
# groma-server SIGSTOPped; a
# SIGSTOPped groma-server whose launcher alone is killed with SIGKILL is
# killed by the next launcher (its pid file), and the cluster serves again.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use Time::HiRes qw(time sleep);

my $node = groma_node('pmdeath');
step('cluster up, model ready');
my $server_pid = status_row($node)->{pid};
ok(proc_alive($server_pid), "groma-server runs (pid $server_pid)");

# its parent is the launcher (a background worker without a database: not in pg_stat_activity)
open(my $f, '<', "/proc/$server_pid/stat") or die;
my ($launcher_pid) = (<$f> =~ /^\d+ \(.*\) \S (\d+)/);
close($f);
open(my $c, '<', "/proc/$launcher_pid/cmdline") or die;
my $title = <$c> // '';
close($c);
like($title, qr/groma launcher/, "groma-server is a child of the groma launcher (pid $launcher_pid)");
# it holds no descriptor but stdin, stdout/stderr, the watch pipe and its own sockets/pipes
my @fds = map { m{/(\d+)$} ? $1 : () } glob("/proc/$server_pid/fd/*");
note("groma-server descriptors: @fds");
ok(!grep({ (readlink("/proc/$server_pid/fd/$_") // '') =~ m{/pg_wal|/base/|postmaster} } @fds),
    'groma-server inherited no PostgreSQL file');

# SIGKILL the postmaster
my $t0 = time;
$node->kill9;
my $gone = wait_until(5, sub { !proc_alive($server_pid) });
ok($gone, sprintf('groma-server gone %.3f s after the postmaster was killed', time - $t0));
ok(wait_until(5, sub { !kill(0, $launcher_pid) }), 'the launcher is gone too');
step('postmaster SIGKILL, servers gone');

# every process of the cluster (groma-server included) runs in the data directory
my $pgdata = $node->data_dir;
sub in_data_dir { return grep { (readlink("/proc/$_/cwd") // '') eq $pgdata } map { m{/(\d+)$} ? $1 : () } glob('/proc/[0-9]*'); }
ok(wait_until(10, sub { !in_data_dir() }), 'no process of the killed cluster is left')
  or diag('left: ' . join(' ', in_data_dir()));
$node->start;
ok(wait_until(30, sub { status_row($node)->{state} eq 'ready' }), 'groma-server ready again after a restart');
my $new_pid = status_row($node)->{pid};
isnt($new_pid, $server_pid, 'a new groma-server');
step('cluster restarted');

# pg_ctl stop -m fast is clean
$t0 = time;
$node->stop('fast');
my $stop_took = time - $t0;
ok(!proc_alive($new_pid), sprintf('no groma-server left after pg_ctl stop -m fast (%.3f s)', $stop_took));
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
like($log, qr/groma-server 0 \(pid $new_pid\) ended: exit 0/, 'groma-server exited cleanly (exit 0) on shutdown');
unlike($log, qr/did not stop within/, 'no groma-server had to be killed');
step('fast stop');

# pg_ctl stop -m immediate with groma-server stopped (SIGSTOP: a debugger, a frozen GPU call): it could not
# see the watch pipe close and stayed, stopped, after the cluster (holding its memory); the launcher's SIGQUIT
# now sends it SIGTERM and SIGCONT
$node->start;
ok(wait_until(30, sub { status_row($node)->{state} eq 'ready' }), 'groma-server ready again');
my $frozen_pid = status_row($node)->{pid};
kill 'STOP', $frozen_pid;
$t0 = time;
$node->stop('immediate');
my $frozen_gone = wait_until(10, sub { !proc_alive($frozen_pid) });
ok($frozen_gone, sprintf('a SIGSTOPped groma-server is gone %.3f s after pg_ctl stop -m immediate', time - $t0));
if (!$frozen_gone) { kill 'CONT', $frozen_pid; kill 'KILL', $frozen_pid; }
step('immediate stop of a stopped server');

# the postmaster killed with SIGKILL while groma-server is stopped: the launcher exits on the postmaster's death
# and wakes the server (SIGCONT) besides its SIGTERM; it stayed, stopped, under init before
$node->start;
ok(wait_until(30, sub { status_row($node)->{state} eq 'ready' }), 'groma-server ready again');
my $stopped_pid = status_row($node)->{pid};
kill 'STOP', $stopped_pid;
my ($postmaster_pid) = PostgreSQL::Test::Utils::slurp_file($node->data_dir . '/postmaster.pid') =~ /^(\d+)/;
$t0 = time;
$node->kill9;
my $stopped_gone = wait_until(10, sub { !proc_alive($stopped_pid) });
ok($stopped_gone, sprintf('a SIGSTOPped groma-server is gone %.3f s after the postmaster was killed', time - $t0));
if (!$stopped_gone) { kill 'CONT', $stopped_pid; kill 'KILL', $stopped_pid; }
ok(wait_until(10, sub { !in_data_dir() }), 'no process of the killed cluster is left')
  or diag('left: ' . join(' ', in_data_dir()));
# (a new postmaster refuses to start while the killed one's pid still names a process, a zombie included)
ok(wait_until(20, sub { !kill(0, $postmaster_pid) }), 'the killed postmaster is reaped');
step('postmaster SIGKILL with a stopped server');

# the launcher alone killed with SIGKILL (the OOM killer) while groma-server is stopped: the server could act
# neither on the watch pipe's EOF nor on its parent-death signal, and stayed in state T with its memory; the
# launcher the postmaster starts next kills it through its pid file
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->start;
ok(wait_until(30, sub { status_row($node)->{state} eq 'ready' }), 'groma-server ready again');
my $orphan_pid = status_row($node)->{pid};
my $pid_file = $node->data_dir . '/groma/server-0.pid';
is(PostgreSQL::Test::Utils::slurp_file($pid_file), "$orphan_pid\n", 'the launcher wrote the pid file of groma-server');
open($f, '<', "/proc/$orphan_pid/stat") or die;
my ($orphan_launcher) = (<$f> =~ /^\d+ \(.*\) \S (\d+)/);
close($f);
kill 'STOP', $orphan_pid;
kill 'KILL', $orphan_launcher;
# (during the crash restart connections are refused: status_row's error counts as "not yet")
ok(wait_until(60, sub { my $r = eval { status_row($node) } // {};
                        ($r->{state} // '') eq 'ready' && $r->{pid} ne $orphan_pid }),
   'after the crash restart a new groma-server is ready');
my $orphan_gone = wait_until(10, sub { !proc_alive($orphan_pid) });
ok($orphan_gone, 'the stopped groma-server the killed launcher left is gone');
if (!$orphan_gone) { kill 'CONT', $orphan_pid; kill 'KILL', $orphan_pid; }
like(PostgreSQL::Test::Utils::slurp_file($node->logfile),
     qr/killing groma-server 0 \(pid $orphan_pid, state T\), left running by an earlier launcher/,
     'the new launcher logged that it killed it');
is($node->safe_psql('postgres', "SELECT (groma_caption(" . image_sql() . ")).text <> ''"), 't',
   'and the cluster answers a caption');
$node->stop('fast');
ok(!-e $pid_file, 'a clean stop removes the pid file');
step('launcher SIGKILLed with its server stopped');

# a pid file naming another process (a reused pid), even one running in the data directory, or holding no pid,
# makes a starting launcher kill nothing
my $bystander = fork();
if ($bystander == 0) { chdir($node->data_dir); exec('sleep', '120'); }
PostgreSQL::Test::Utils::append_to_file($pid_file, "$bystander\n");
PostgreSQL::Test::Utils::append_to_file($node->data_dir . '/groma/server-1.pid', "not a pid\n");
$node->start;
ok(wait_until(30, sub { status_row($node)->{state} eq 'ready' }), 'groma-server ready');
ok(kill(0, $bystander), 'the process a stale pid file named is left alone');
ok(!-e $node->data_dir . '/groma/server-1.pid', 'a pid file without a pid is removed');
unlike(PostgreSQL::Test::Utils::slurp_file($node->logfile), qr/killing groma-server 0 \(pid $bystander/,
       'and nothing is logged as killed');
kill 'KILL', $bystander;
waitpid($bystander, 0);
$node->stop('fast');
step('stale pid files');
done_testing();
