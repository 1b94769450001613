# Waiting for groma-server never blocks PostgreSQL's interrupts:
# pg_cancel_backend ends a long generation at once and groma-server drops
# the request (its queue and running count fall to zero); statement_timeout
# and groma.request_timeout give SQLSTATE 57014 on time; the session keeps
# working afterwards.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use Time::HiRes qw(time sleep);

my $node = groma_node('cancel');
step('cluster up, model ready');
my $img = image_sql();
my $long = "SET groma.max_new_tokens = 3000; SELECT (groma_chat($img, 'Describe the image in detail.')).text IS NOT NULL";

# pg_cancel_backend during a long generation
my $a = start_query($node, 'cancel_a', $long);
ok(wait_until(20, sub { status_row($node)->{running} eq '1' }), "A's request is running in groma-server");
my $a_pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE application_name = 'cancel_a'");
step("A's request running");
my $t0 = time;
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($a_pid)"), 't', 'pg_cancel_backend(A)');
my ($rc, $out, $err, $ended) = finish_query($a, 10);
my $took = $ended - $t0;
like($err, qr/57014: canceling statement due to user request/, 'A is cancelled with SQLSTATE 57014');
cmp_ok($took, '<', 0.25, sprintf('A returned %.3f s after pg_cancel_backend', $took));
step('A cancelled');
my $idle = wait_until(1, sub { my $r = status_row($node); $r->{queue_depth} eq '0' && $r->{running} eq '0' });
ok($idle, sprintf('groma-server dropped the request (queue_depth + running = 0 after %.3f s)', time - $t0));
step('server idle again');

# pg_terminate_backend: the backend exits (FATAL skips PG_CATCH) and still leaves no count behind
$a = start_query($node, 'terminate_a', $long);
ok(wait_until(20, sub { status_row($node)->{running} eq '1' }), "A's second request is running");
is(status_row($node)->{in_flight}, '1', 'groma_status().in_flight counts it');
$a_pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE application_name = 'terminate_a'");
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($a_pid)");
($rc, $out, $err, $ended) = finish_query($a, 10);
like($err, qr/57P01: terminating connection due to administrator command/, 'A is terminated');
cmp_ok($ended - $t0, '<', 0.25, sprintf('A ended %.3f s after pg_terminate_backend', $ended - $t0));
ok(wait_until(1, sub { my $r = status_row($node); $r->{queue_depth} eq '0' && $r->{running} eq '0' && $r->{in_flight} eq '0' }),
    'groma-server dropped the request and in_flight is 0 again');
step('A terminated');

# statement_timeout
my $b = $node->background_psql('postgres', on_error_stop => 0);
$b->query_safe('SET groma.max_new_tokens = 3000');
$b->query_safe("\\set VERBOSITY verbose");
$b->query_safe("SET statement_timeout = '200ms'");
$t0 = time;
my ($res, $failed) = $b->query("SELECT (groma_chat($img, 'Describe the image in detail.')).text IS NOT NULL");
$took = time - $t0;
my $b_err = $b->{stderr};
$b->{stderr} = '';    # BackgroundPsql keeps stderr until cleared
ok($failed, 'the generation fails under statement_timeout = 200ms');
like($b_err, qr/57014: canceling statement due to statement timeout/, 'SQLSTATE 57014 from statement_timeout');
cmp_ok($took, '<', 0.45, sprintf('statement_timeout error after %.3f s', $took));
step('statement_timeout');
$b->query_safe('RESET statement_timeout');

# groma.request_timeout
$b->query_safe('SET groma.request_timeout = 200');
$t0 = time;
($res, $failed) = $b->query("SELECT (groma_chat($img, 'Describe the image in detail.')).text IS NOT NULL");
$took = time - $t0;
$b_err = $b->{stderr};
$b->{stderr} = '';
like($b_err, qr/57014: groma request timed out after 200 ms/, 'groma.request_timeout gives 57014 and says so');
cmp_ok($took, '<', 0.45, sprintf('groma.request_timeout error after %.3f s', $took));
step('groma.request_timeout');
$b->query_safe('RESET groma.request_timeout');

# the session keeps working, and so does the server
ok(wait_until(2, sub { my $r = status_row($node); $r->{queue_depth} eq '0' && $r->{running} eq '0' }),
    'groma-server is idle after the timeouts');
$b->query_safe('SET groma.max_new_tokens = 16');
is($b->query_safe("SELECT (groma_chat($img, 'What is this?')).text IS NOT NULL"), 't',
    'the same session answers a new request');
cmp_ok($b->query_safe('SELECT groma_ping()'), '<', 100, 'groma_ping() answers in milliseconds');
step('session still works');
my $st = status_row($node);
is($st->{restarts}, '0', 'groma-server never restarted (cancels do not kill it)');
cmp_ok($st->{cancelled}, '>=', 1, "groma-server counted the dropped requests as cancelled ($st->{cancelled})");
is($st->{failed}, '0', 'and none of them as failed');
$b->quit;
$node->stop('fast');
done_testing();
