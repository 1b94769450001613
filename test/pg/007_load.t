# Load: 64 sessions send requests for 30 s through pgbench (each query
# checks its answer against the one a single session got for the same
# input, and fails loudly when they differ): zero errors, every answer equal.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use Time::HiRes qw(time);

my $node = groma_node('load', "max_connections = 100\ngroma.max_queue = 256\ngroma.max_new_tokens = 4");
step('cluster up');
my @images = ('synthetic_333x251.jpg', 'waterview.jpg', 'extreme_ironing.jpg');
my @prompts = ('What is this?', '[grounding]Please briefly summarize the content of this image.');

# the single-session answers, one per (image, prompt)
$node->safe_psql('postgres', 'CREATE TABLE inputs (id int PRIMARY KEY, img bytea, prompt text, answer groma_answer)');
my $id = 0;
for my $name (@images) {
    for my $p (@prompts) {
        $id++;
        $node->safe_psql('postgres', "INSERT INTO inputs VALUES ($id, " . image_sql($name) . ", '$p', NULL)");
    }
}
$node->safe_psql('postgres', 'UPDATE inputs SET answer = groma_chat(img, prompt)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inputs WHERE answer IS NOT NULL'), $id,
    "$id single-session answers");
step('single-session answers');

# every transaction asks again and raises when the answer differs
$node->safe_psql('postgres', q{
CREATE FUNCTION ask_and_compare(k int) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE r record; got groma_answer;
BEGIN
  SELECT * INTO r FROM inputs WHERE id = k;
  got := groma_chat(r.img, r.prompt);
  IF got::text IS DISTINCT FROM r.answer::text THEN
    RAISE EXCEPTION 'answer for input % differs: % vs %', k, got, r.answer;
  END IF;
  RETURN true;
END $$});
my $script = "${PostgreSQL::Test::Utils::tmp_check}/load.sql";
open(my $f, '>', $script) or die;
print $f "\\set k random(1, $id)\nSELECT ask_and_compare(:k);\n";
close($f);

my $t0 = time;
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT 1');    # warm connection path
my @cmd = ('pgbench', '-n', '-c', '64', '-j', '4', '-T', '30', '-f', $script, '-d', 'postgres',
    '-h', $node->host, '-p', $node->port);
my ($stdout, $stderr) = ('', '');
IPC::Run::run(\@cmd, '>', \$stdout, '2>', \$stderr);
my $rc = $? >> 8;
note($stdout);
diag($stderr) if $stderr ne '';
step('64 sessions for 30 s');
is($rc, 0, 'pgbench with 64 sessions exits 0 (no client aborted)');
my ($done) = $stdout =~ /number of transactions actually processed: (\d+)/;
my ($failed) = $stdout =~ /number of failed transactions: (\d+)/;
cmp_ok($done // 0, '>=', 64, "at least one request per session answered on average ($done in 30 s)");
is($failed // 0, 0, 'no transaction failed');
unlike($stderr, qr/ERROR|differs/, 'no error and no differing answer');
my $st = status_row($node);
is($st->{failed}, 0, 'the server answered no request with an error');
is($st->{restarts}, 0, 'and never restarted');

$node->stop;
done_testing();
