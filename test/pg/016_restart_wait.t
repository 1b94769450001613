# groma.restart_wait: single and array calls that wait for groma-server
# when it restarts or loads, and send again the requests it lost through no
# fault of their own.  By default (0) a configuration reload that restarts
# the server ends a plain UPDATE over a table with 57P03, and a request
# queued behind another session's hanging image fails with it (58000).
# With the setting, the UPDATE and an array call go on across the reload,
# the queued request is sent again to the restarted server, and a call made
# while the server restarts after a crash waits for it.  A request that was
# in the fatal model call is not sent again (the server is lost once, not
# again and again), the wait ends with its limit or a cancel, and the
# captions are the ones a quiet server gives.  An image check waits for a
# server process only, not for its model.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use Time::HiRes qw(time sleep);

$ENV{GROMA_SERVER_TEST_CRASH} = '1';	# the postmaster, and so groma-server, inherit these
$ENV{GROMA_SERVER_TEST_STALL} = '1';
$ENV{GROMA_SERVER_TEST_LOAD_STALL} = '1000';
# (a watchdog of 5 s: the requests sent again after a reload come back together, and their vision on a busy 2-core
# machine may take over 3 s)
my $node = groma_node('restart_wait', "groma.max_new_tokens = 4\ngroma.server_watchdog = '5s'");
step('cluster up, model ready');

# Runs sql and returns its output.
sub sql {
    my ($q) = @_;
    return $node->safe_psql('postgres', $q);
}

# Runs sql in a session with groma.restart_wait set to wait (undef: the default), stopping at an error unless
# on_error_stop => 0 is passed; returns (exit code, stdout, stderr).
sub psql_with_wait {
    my ($wait, $q, %opt) = @_;
    $q = "SET groma.restart_wait = '$wait'; $q" if defined $wait;
    my ($rc, $out, $err) = $node->psql('postgres', $q, extra_params => ['-v', 'VERBOSITY=verbose'],
                                       on_error_stop => $opt{on_error_stop} // 1);
    return ($rc, $out, $err);
}

# Returns the server's restart count.
sub restarts { return status_row($node)->{restarts}; }

# Returns the server log written since byte offset at.
sub log_since {
    my ($at) = @_;
    return substr(PostgreSQL::Test::Utils::slurp_file($node->logfile), $at);
}

# Waits until the server is ready again.
sub ready_again {
    ok(wait_until(60, sub { (status_row($node)->{state} // '') eq 'ready' }), 'the server is ready again');
}

my @names = ('extreme_ironing.jpg', 'synthetic_333x251.jpg', 'waterview.jpg');
sql("CREATE TABLE single (img bytea, caption text)");
sql("INSERT INTO single SELECT i, groma_caption(i)::text FROM (VALUES " . join(', ', map { '(' . image_sql($_) . ')' } @names)
    . ") v(i)");
sql("CREATE TABLE pics (id int PRIMARY KEY, img bytea, caption groma_answer)");
sql("INSERT INTO pics SELECT g, s.img, NULL FROM generate_series(1, 12) g JOIN (SELECT img, row_number() OVER () - 1 AS k
     FROM single) s ON s.k = g % 3");
my $max_queue = 64;
step('12 rows, and the row-by-row captions of their 3 images');

# Returns how many rows of pics have the caption groma_caption gave their image on a quiet server.
sub rows_as_single {
    return sql("SELECT count(*) FROM pics p JOIN single s ON s.img = p.img WHERE p.caption::text = s.caption");
}

# Starts q (in a session with groma.restart_wait = wait, undef: the default), reloads the configuration with a
# changed groma.max_queue (which restarts groma-server) once the server has answered one of its requests, and
# returns (q's exit code, its stderr, the requests answered "shutting down", whether the server process changed, its
# output).
sub under_reload {
    my ($wait, $q) = @_;
    my $log_at = -s $node->logfile;
    my $pid = status_row($node)->{pid};
    $q = "SET groma.restart_wait = '$wait'; $q" if defined $wait;
    my $h = start_query($node, 'under_reload', $q);
    wait_until(30, sub { log_since($log_at) =~ /request \d+ generate .* ok/ });
    $max_queue++;
    sql("ALTER SYSTEM SET groma.max_queue = $max_queue");
    sql('SELECT pg_reload_conf()');
    my ($code, $out, $err) = finish_query($h, 120);
    my $shut_down = 0;
    # (the server's lines reach the log through the launcher: a moment after the answers)
    wait_until(3, sub { $shut_down = () = log_since($log_at) =~ /request \d+ generate .*groma-server is shutting down/g;
                        $shut_down > 0 });
    ready_again();
    chomp $out;
    return ($code, $err, $shut_down, status_row($node)->{pid} != $pid, $out);
}

# ---- by default, a reload that restarts groma-server ends a plain UPDATE over the table
my ($code, $err, $shut_down, $replaced) = under_reload(undef, 'UPDATE pics SET caption = groma_caption(img)');
isnt($code, 0, 'by default, a reload under UPDATE ... SET caption = groma_caption(img) ends the UPDATE');
like($err, qr/57P03: groma-server (is stopping|is restarting|is loading)/, 'with 57P03') or diag($err);
is(sql('SELECT count(*) FROM pics WHERE caption IS NOT NULL'), '0', 'and no row is captioned');
step('a reload ends a plain UPDATE by default');

# ---- with groma.restart_wait, the UPDATE goes on across the reload.  The reload is sent once a request of the
# UPDATE was answered; it should land on one in flight (answered "shutting down", then sent again), else between two
# rows (the next one waits for the new server): tried again so until one lands on a request
for my $attempt (1 .. 3) {
    sql('UPDATE pics SET caption = NULL');
    ($code, $err, $shut_down, $replaced) = under_reload('60s', 'UPDATE pics SET caption = groma_caption(img)');
    last if $code != 0 || $shut_down > 0;
    note("attempt $attempt: the reload landed between two rows");
}
is($code, 0, 'with groma.restart_wait = 60s, the UPDATE succeeds across the reload') or diag($err);
ok($replaced, 'the reload replaced the server process under it');
ok($shut_down > 0, "a request of it was answered 'shutting down' ($shut_down), and sent again");
is(rows_as_single(), '12', 'every row has the caption a quiet server gives its image');
step('an UPDATE waits for a reload with groma.restart_wait');

# ---- an array call too
my $array_q = "SELECT count(*) FROM (SELECT groma_caption_many(array_agg(img ORDER BY id)) AS a FROM pics) x
               CROSS JOIN generate_subscripts(x.a, 1) i JOIN pics p ON p.id = i JOIN single s ON s.img = p.img
               WHERE x.a[i]::text = s.caption";
my $array_out;
for my $attempt (1 .. 3) {
    ($code, $err, $shut_down, $replaced, $array_out) = under_reload('60s', $array_q);
    last if $code != 0 || $shut_down > 0;
    note("attempt $attempt: the reload landed after the call's requests");
}
is($code, 0, 'with groma.restart_wait, groma_caption_many succeeds across a reload') or diag($err);
ok($replaced, 'the reload replaced the server process under it');
ok($shut_down > 0, "requests of it were answered 'shutting down' ($shut_down), and sent again");
is($array_out, '12', 'every answer is the caption a quiet server gives its image');
step('an array call waits for a reload with groma.restart_wait');

# ---- a request queued behind another session's hanging image: it was not in the hung model call, so it is sent
# again once the watchdog has ended the server and it is back; the hanging request itself is not sent again
my $stall = marked_image_sql('extreme_ironing.jpg', 'groma test: stall');
my $plain = image_sql('waterview.jpg');
my $expected = sql("SELECT caption FROM single WHERE img = $plain");
for my $wait (undef, '60s') {
    my $restarts = restarts();
    my $set = defined $wait ? "SET groma.restart_wait = '$wait'; " : '';
    my $hang = start_query($node, 'hang', "${set}SELECT groma_caption($stall)");
    ok(wait_until(30, sub { (status_row($node)->{model_call_s} // 0) > 0.2 }), 'one session\'s image hangs the server');
    my $queued = start_query($node, 'queued', "${set}SELECT groma_caption($plain)::text");
    ok(wait_until(10, sub { (status_row($node)->{queue_depth} // 0) >= 1 }),
       'another session\'s request is queued behind the hung call');
    my ($hang_code, undef, $hang_err) = finish_query($hang, 60);
    isnt($hang_code, 0, 'the request with the hanging image fails');
    like($hang_err, qr/58000: groma-server hung while it had this request/, 'lost with the server its watchdog ended')
        or diag($hang_err);
    my ($queued_code, $queued_out, $queued_err) = finish_query($queued, 60);
    chomp $queued_out;
    if (!defined $wait) {
        isnt($queued_code, 0, 'by default, the request queued behind it fails too');
        like($queued_err, qr/58000: groma-server hung while it had this request \(queued or running\)/,
             'with 58000') or diag($queued_err);
    } else {
        is($queued_code, 0, 'with groma.restart_wait, the request queued behind it succeeds') or diag($queued_err);
        is($queued_out, $expected, 'with the caption a quiet server gives');
    }
    ready_again();
    is(restarts() - $restarts, 1, 'the server was ended once: the hanging request was not sent again');
    step('a request queued behind a hanging image, restart_wait ' . ($wait // 'unset'));
}

# ---- a call made while the server restarts after a crash: by default it fails at once; with groma.restart_wait it
# waits, up to its limit or a cancel
my $crash = marked_image_sql('waterview.jpg', 'groma test: crash');
my $restarts = restarts();
($code, undef, $err) = psql_with_wait('60s', "SELECT groma_caption($crash)");
isnt($code, 0, 'an image that crashes the server fails, also with groma.restart_wait');
like($err, qr/58000: groma-server was terminated by signal 11/, 'lost with the server') or diag($err);
like(status_row($node)->{state}, qr/^(backoff|starting|loading)$/, 'the server is on its way back');
my $t0 = time;
($code, undef, $err) = psql_with_wait(undef, "SELECT groma_caption($plain)");
like($err, qr/57P03: groma-server is (restarting|starting|loading)/, 'by default, a call meanwhile fails with 57P03')
    or diag($err);
cmp_ok(time - $t0, '<', 2, 'at once');
$t0 = time;
($code, undef, $err) = psql_with_wait('200ms', "SELECT groma_caption($plain)");
like($err, qr/57P03: groma-server is (restarting|starting|loading)/,
     'with groma.restart_wait = 200ms too, once it is over') or diag($err);
cmp_ok(time - $t0, '>=', 0.2, 'after waiting');
cmp_ok(time - $t0, '<', 3, 'about that long');
($code, undef, $err) = psql_with_wait('60s', "SET statement_timeout = '300ms'; SELECT groma_caption($plain)");
like($err, qr/57014: canceling statement due to statement timeout/, 'a cancel ends the wait') or diag($err);
$t0 = time;
my $out;
($code, $out, $err) = psql_with_wait('60s', "SELECT groma_caption($plain)::text");
is($code, 0, 'with groma.restart_wait = 60s, the call waits for the server and succeeds') or diag($err);
is($out, $expected, 'with the caption a quiet server gives');
note(sprintf('it waited %.1f s', time - $t0));
is(restarts() - $restarts, 1, 'the crashing request was not sent again: the server crashed once');
is(status_row($node)->{state}, 'ready', 'and is ready');
step('a call during a restart after a crash');

# ---- an image check needs no model: with groma.restart_wait it waits for the restarted server process only, not
# for its model (each load lasts over 1 s here: GROMA_SERVER_TEST_LOAD_STALL)
# (the crash, the check and the state read in one session: the load stall leaves about a second to see it)
($code, $out, $err) = psql_with_wait('60s', "SELECT groma_caption($crash);\n"
    . "SELECT groma_image_validate($plain) || ' ' || (SELECT state FROM groma_status() WHERE server = 0);",
    on_error_stop => 0);
like($err, qr/58000: groma-server was terminated by signal 11/, 'the server crashed again') or diag($err);
like($out, qr/^true (starting|loading)$/, 'with groma.restart_wait, an image check waits and is answered while the new server still loads its model')
    or diag("$out $err");
ready_again();
step('an image check during a restart');

done_testing();
