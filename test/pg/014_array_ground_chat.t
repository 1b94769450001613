# Grounding a phrase and asking a prompt over a table in one call:
# groma_ground_many(bytea[], phrase) gives each image (ord, its subscript) the
# boxes of groma_ground(bytea, phrase), NULL boxes for a NULL image, and
# groma_chat_many(bytea[], prompt) the answers of groma_chat(bytea, prompt), with
# groma.bulk_in_flight requests in flight (so groma-server batches their
# vision) and with one; the README's recipe maps the rows back to their ids;
# groma_progress names both calls while they run and forgets them after; a
# bad image fails the call naming its subscript, the others' requests
# being answered and the session left working; a queue kept full by
# another session does not fail a long array call (its refused request is
# sent again).
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;

my $node = groma_node('arrays', '');   # 1024 new tokens: the tiny model grounds "the man" in the synthetic image late
step('cluster up, model ready');

# Runs sql and returns its output.
sub sql {
    my ($q) = @_;
    return $node->safe_psql('postgres', $q);
}

my @names = ('extreme_ironing.jpg', 'synthetic_333x251.jpg', 'waterview.jpg');
sql("CREATE TABLE photos (id int PRIMARY KEY, img bytea)");
sql("INSERT INTO photos VALUES " . join(', ', map { "($_, " . image_sql($names[($_ - 1) % 3]) . ")" } 1 .. 6)
    . ", (7, NULL)");
my $phrase = 'the man';
my $prompt = 'What is in the picture?';
# row-by-row answers, the reference
sql("CREATE TABLE one AS SELECT id, groma_ground(img, '$phrase') AS boxes,
                                groma_chat(img, '$prompt')::text AS answer FROM photos");
ok(sql("SELECT count(*) FROM one WHERE cardinality(boxes) > 0") > 0, 'the phrase is grounded to some boxes row by row');
step('row-by-row answers');

# The README's recipe: ids and images aggregated in one order, ord maps each row back.
my $recipe = "SELECT b.ids[g.ord] AS id, g.boxes
              FROM (SELECT array_agg(id ORDER BY id) AS ids, array_agg(img ORDER BY id) AS imgs FROM photos) b,
                   groma_ground_many(b.imgs, '$phrase') g";
# pairs of rows that differ: a missing row, a different count of boxes or a corner further than 1e-3 px
my $diff = "SELECT count(*) FROM one FULL JOIN (%s) arr USING (id)
            WHERE one.id IS NULL OR arr.id IS NULL OR (one.boxes IS NULL) <> (arr.boxes IS NULL)
               OR cardinality(one.boxes) <> cardinality(arr.boxes)
               OR EXISTS (SELECT 1 FROM generate_subscripts(one.boxes, 1) k
                          WHERE ((one.boxes[k])[0] <-> (arr.boxes[k])[0]) + ((one.boxes[k])[1] <-> (arr.boxes[k])[1]) > 1e-3)";
is(sql(sprintf($diff, $recipe)), 0,
   'groma_ground_many(bytea[]) gives every image the boxes of groma_ground(bytea), NULL for the NULL image '
   . '(4 requests in flight: corners within 1e-3 px)');
is(sql("SET groma.bulk_in_flight = 1; " . sprintf($diff =~ s/> 1e-3/> 0/r, $recipe)), 0,
   'with one request in flight the boxes are exactly the same');
is(sql("SELECT string_agg(ord::text, ',' ORDER BY ord) FROM groma_ground_many((SELECT array_fill(img, ARRAY[2], ARRAY[7])
        FROM photos WHERE id = 1), '$phrase')"), '7,8', 'ord is the subscript, for an array starting at 7');

my $chat = sql("SELECT string_agg(coalesce(a[k]::text, 'NULL'), E'\\n' ORDER BY k)
                FROM (SELECT groma_chat_many(array_agg(img ORDER BY id), '$prompt') AS a FROM photos) s,
                     generate_subscripts(a, 1) k");
is($chat, sql("SELECT string_agg(coalesce(answer, 'NULL'), E'\\n' ORDER BY id) FROM one"),
   'groma_chat_many(bytea[]) answers each image as groma_chat(bytea), NULL for NULL, in order');
step('array answers equal to row by row');

# a bad image names its subscript; the session keeps working
my ($rc, $out, $err) = $node->psql('postgres',
    "SELECT * FROM groma_ground_many(ARRAY[(SELECT img FROM photos WHERE id = 1),
                                      substring((SELECT img FROM photos WHERE id = 3) FOR 4000)], '$phrase')",
    extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22P03.*CONTEXT:  the image imgs\[2\] of the array/s,
     'an image cut short fails groma_ground_many(bytea[]) with 22P03, naming imgs[2]');
($rc, $out, $err) = $node->psql('postgres',
    "SELECT groma_chat_many(ARRAY[NULL, substring((SELECT img FROM photos WHERE id = 3) FOR 4000),
                             (SELECT img FROM photos WHERE id = 2)], '$prompt')",
    extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22P03.*CONTEXT:  the image imgs\[2\] of the array/s, 'and groma_chat_many(bytea[]) too');
is(status_row($node)->{in_flight}, 0, 'no request is left in flight');
is(sql("SELECT groma_ground(img, '$phrase')::text = (SELECT boxes::text FROM one WHERE id = 2) FROM photos WHERE id = 2"),
   't', 'the session keeps working');

# groma_progress names each call while it runs, then forgets it; it counts the 24 images sent (the NULL
# element of each copy of the table gets no request)
for my $call ([ 'grounding a phrase in an array', "SELECT count(*) FROM groma_ground_many(
                  (SELECT array_agg(img) FROM photos, generate_series(1, 4)), '$phrase')" ],
              [ 'answering a prompt about an array', "SELECT cardinality(groma_chat_many(
                  (SELECT array_agg(img) FROM photos, generate_series(1, 4)), '$prompt'))" ]) {
    my ($phase, $q) = @$call;
    my $h = start_query($node, 'arr', $q);
    ok(wait_until(120, sub {
        sql("SELECT count(*) FROM groma_progress WHERE phase = '$phase' AND relid IS NULL AND rows_total = 24
               AND pid = (SELECT pid FROM pg_stat_activity WHERE application_name = 'arr')") == 1 }),
       "groma_progress shows '$phase' while it runs");
    my ($qrc) = finish_query($h, 180);
    is($qrc, 0, 'the call finishes');
    is(sql("SELECT count(*) FROM groma_progress"), 0, 'and leaves groma_progress');
}
step('progress');

# A full queue does not end a long array call, nor does the call take the queue from other sessions: with
# --max-batch 1 and --max-queue 4 the server holds 1 running request and 3 queued of one session (the last
# place is kept for sessions with nothing queued), so at least 2 of the call's 6 in flight are refused as busy
# whatever the timing, and each is sent again when one of the call's own is answered, instead of failing the
# call; the requests of three other sessions at once always find a place (the first takes the kept place, the
# others that of the array call's newest request, which it sends again).
my $refusals_before = () = PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ /generate .* busy: groma-server's queue is full/g;
$node->safe_psql('postgres', "ALTER SYSTEM SET groma.max_queue = 4; ALTER SYSTEM SET groma.max_batch = 1");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(60, sub { my $r = status_row($node); $r->{state} eq 'ready' && $r->{restarts} eq '1' }),
   'groma-server restarted with a queue of 4 and one answer at a time');
my $long = start_query($node, 'arrbusy', "SET groma.max_new_tokens = 48; SET groma.bulk_in_flight = 6;
    SELECT count(*) FROM groma_ground_many((SELECT array_agg(img) FROM photos, generate_series(1, 2)
                                       WHERE img IS NOT NULL), '$phrase')");
my ($taken, $refused) = (0, 0);
my $refusal = '';
while ($long->{h}->pumpable) {
    $long->{h}->pump_nb;
    my @three = map { start_query($node, "beside$_", "SET groma.max_new_tokens = 4;
        SELECT groma_ground(img, 'x') FROM photos WHERE id = 2") } 1 .. 3;
    for my $q (@three) {
        my ($brc, $bout, $berr) = finish_query($q, 300);
        if (defined $brc && $brc == 0) { $taken++ } else { $refused++; $refusal = $berr; }
    }
}
my ($lrc, $lout, $lerr) = finish_query($long, 300);
is($lrc, 0, 'the array call still succeeds') or diag($lerr);
chomp $lout;
is($lout, '12', 'with a row for each of its 12 images');
ok($taken > 0, "another session's requests were answered while the array call ran ($taken)");
is($refused, 0, 'and none was refused as busy') or diag($refusal);
my $busy = () = PostgreSQL::Test::Utils::slurp_file($node->logfile)
    =~ /generate .* busy: groma-server's queue is full for this client/g;
ok($busy >= 2, "the array call's own requests were refused as busy ($busy times, at least the 2 the server "
   . "would not hold for it) and sent again");
my $gave = () = PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ /generate .* busy: groma-server's queue is full: this request gave its place/g;
note("the array call's requests gave their places to other sessions' $gave times");
# groma_status() counts those refusals in busy, not in failed (the server restarted at the reload: its
# counters began there)
# (the server's log lines reach the cluster's log through the launcher: read again until they agree)
my ($refusals, $counted);
wait_until(10, sub {
    $refusals = (() = PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ /generate .* busy: groma-server's queue is full/g)
      - $refusals_before;
    $counted = status_row($node);
    return $counted->{busy} == $refusals;
});
is($counted->{busy}, $refusals, "groma_status().busy counts every refusal as busy ($refusals)");
is($counted->{failed}, '0', 'and failed none of them');
# the queue full of other sessions' requests (five long single calls: one running, four waiting): an array
# call refused as busy with nothing else in flight waits for room and sends again, instead of failing
my @singles;
for my $k (1 .. 5) {
    push @singles, start_query($node, "single$k", "SET groma.max_new_tokens = 400;
        SELECT (groma_chat(img, 'What is this?')).text IS NOT NULL FROM photos WHERE id = 1");
    ok(wait_until(30, sub { my $r = status_row($node); $r->{running} + $r->{queue_depth} == $k }),
       "long single call $k is running or queued");
}
my $waits_before = () = PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ /generate .* busy: groma-server's queue is full/g;
my $patient = start_query($node, 'patient', "SET groma.max_new_tokens = 4; SET groma.bulk_in_flight = 2;
    SELECT count(*) FROM groma_ground_many((SELECT array_agg(img) FROM photos WHERE img IS NOT NULL), '$phrase')");
my ($prc, $pout, $perr) = finish_query($patient, 300);
is($prc, 0, 'an array call that finds the queue full waits for room and succeeds') or diag($perr);
chomp $pout;
is($pout, '6', 'with a row for each of its 6 images');
my $waits = (() = PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ /generate .* busy: groma-server's queue is full/g)
  - $waits_before;
ok($waits >= 2, "its requests were refused as busy ($waits times) and sent again");
for my $q (@singles) {
    my ($src, $sout, $serr) = finish_query($q, 300);
    is($src, 0, 'a long single call ends') or diag($serr);
}
# with groma.request_timeout the wait for room is bounded: the call fails with 53000 once it is over (or, let
# into the queue in the meantime, with its request's own timeout)
@singles = ();
for my $k (1 .. 5) {
    push @singles, start_query($node, "single$k", "SET groma.max_new_tokens = 400;
        SELECT (groma_chat(img, 'What is this?')).text IS NOT NULL FROM photos WHERE id = 1");
    ok(wait_until(30, sub { my $r = status_row($node); $r->{running} + $r->{queue_depth} == $k }),
       "again, long single call $k is running or queued");
}
my ($trc, $tout, $terr) = $node->psql('postgres', "SET groma.request_timeout = '300ms'; SET groma.bulk_in_flight = 1;
    SELECT count(*) FROM groma_ground_many((SELECT array_agg(img) FROM photos WHERE img IS NOT NULL), '$phrase')");
isnt($trc, 0, 'with groma.request_timeout the array call does not wait for room without a limit');
like($terr, qr/groma-server's request queue is full|groma request timed out after 300 ms/,
     'it fails with the full queue (or, let in, with its request\'s timeout)') or diag($terr);
finish_query($_, 300) for @singles;
$node->safe_psql('postgres', "ALTER SYSTEM RESET groma.max_queue; ALTER SYSTEM RESET groma.max_batch");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
step('array call beside a full queue');

$node->stop;
done_testing();
