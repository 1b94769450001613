# groma on Citus: a coordinator and two workers on this machine, each with
# groma preloaded and its own groma-server (the tiny model on the CPU).  A
# table of the bundled images, replicated to a few hundred rows, is
# distributed; a distributed UPDATE captions every row exactly once, on
# the workers (both groma-servers serve), with the single-node answers; the
# regions of every image go into a co-located distributed table with GiST,
# full-text (GIN over groma_describe's words) and, where pgvector is
# installed, HNSW indexes, searched from the coordinator; a worker's groma-server killed in
# the middle of a distributed UPDATE makes the statement fail cleanly (no
# row half-captioned) and the retry captions everything.  Skips, saying why,
# where Citus is not installed (test/run.sh builds it from
# ../shared/third_party when that exists).
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use Time::HiRes qw(time sleep);

my $citus_sql = `pg_config --sharedir`;
chomp $citus_sql;
if (!-f "$citus_sql/extension/citus.control") {
    plan skip_all => "Citus is not installed ($citus_sql/extension/citus.control is missing; "
      . "test/run.sh builds it from ../shared/third_party when that folder exists)";
}

my $rows_per_image = $ENV{GROMA_CITUS_ROWS} || 100;
my $conf = "shared_preload_libraries = 'citus,groma'\ngroma.threads = 1\ngroma.max_new_tokens = 4\n"
  . "max_connections = 60\ncitus.shard_count = 4";
my $coord = groma_node('coordinator', $conf);
my @workers = map { groma_node("worker$_", $conf) } (1, 2);
step('coordinator and two workers up, each with a ready groma-server');

# Runs sql on the coordinator and returns its output.
sub sql { my ($q) = @_; return $coord->safe_psql('postgres', $q); }

for my $n ($coord, @workers) {
    $n->safe_psql('postgres', 'CREATE EXTENSION citus');
}
sql("SELECT citus_set_coordinator_host('" . $coord->host . "', " . $coord->port . ")");
for my $w (@workers) {
    sql("SELECT citus_add_node('" . $w->host . "', " . $w->port . ")");
}
is(sql('SELECT count(*) FROM citus_get_active_worker_nodes()'), 2, 'the coordinator has two active workers');

# the bundled images, replicated, in a distributed table
my @names = ('extreme_ironing.jpg', 'synthetic_333x251.jpg', 'waterview.jpg');
sql("CREATE TABLE images (name text PRIMARY KEY, img bytea NOT NULL)");
sql("INSERT INTO images VALUES " . join(', ', map { "('$_', " . image_sql($_) . ")" } @names));
sql("CREATE TABLE photos (id int PRIMARY KEY, name text NOT NULL, img bytea NOT NULL, caption groma_answer)");
sql("SELECT create_distributed_table('photos', 'id')");
sql("INSERT INTO photos (id, name, img) SELECT g * 3 + k, i.name, i.img
     FROM generate_series(0, $rows_per_image - 1) g,
          (SELECT row_number() OVER (ORDER BY name) - 1 AS k, name, img FROM images) i");
my $n_rows = sql('SELECT count(*) FROM photos');
is($n_rows, 3 * $rows_per_image, "$n_rows rows distributed");
is(sql("SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'photos'::regclass"), 2,
   'the shards are on both workers');

# single-node answers, on the coordinator's own groma-server
sql("CREATE TABLE single AS SELECT name, groma_caption(img)::text AS caption FROM images");
step('single-node answers of the 3 images');

# a distributed UPDATE: pushed down to the workers, every row once, the single-node answer
like(sql("EXPLAIN (COSTS OFF) UPDATE photos SET caption = groma_caption(img)"), qr/Custom Scan \(Citus Adaptive\)/,
     'the UPDATE with groma_caption is planned by Citus');
my $served_before = worker_served();
my $t0 = time;
sql("UPDATE photos SET caption = groma_caption(img)");
my $secs = time - $t0;
step("distributed UPDATE of $n_rows rows");
# the figure (not a test): the same job on one node (the coordinator's own groma-server, a local table of
# the first 90 rows), as images/s
sql('CREATE TABLE photos_local AS SELECT id, name, img, NULL::groma_answer AS caption FROM photos WHERE id < 90');
$t0 = time;
sql('UPDATE photos_local SET caption = groma_caption(img)');
my $secs_one = time - $t0;
my $n_local = sql('SELECT count(*) FROM photos_local');
note(sprintf('figure: %.2f images/s on one node (%d captions), %.2f images/s on two workers (%d captions)',
             $n_local / $secs_one, $n_local, $n_rows / $secs, $n_rows));
step("the same UPDATE on one node");
is(sql('SELECT count(*) FROM photos WHERE caption IS NULL'), 0, 'every row is captioned');
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'every caption equals the single-node answer for its image');
my @served_after = @{ worker_served() };
my @delta = map { $served_after[$_] - $served_before->[$_] } (0, 1);
ok($delta[0] > 0 && $delta[1] > 0, "both workers' groma-servers served the UPDATE ($delta[0] + $delta[1])");
is($delta[0] + $delta[1], $n_rows, 'one request per row: every row was captioned exactly once');

# Returns [served by worker 1, served by worker 2], read through the coordinator.
sub worker_served {
    my $out = sql("SELECT nodeport, result FROM run_command_on_workers(\$\$SELECT served FROM groma_status()\$\$)
                   ORDER BY nodeport");
    my %by_port = map { split /\|/ } split /\n/, $out;
    return [ map { $by_port{ $_->port } // 0 } @workers ];
}

# status across nodes, as the README shows it
like(sql("SELECT string_agg(result, ' | ' ORDER BY nodeport) FROM run_command_on_workers(\$\$SELECT string_agg(server || ': ' ||
          state || ', served ' || served, '; ') FROM groma_status()\$\$)"),
     qr/^0: ready, served \d+ \| 0: ready, served \d+$/, "every worker's groma_status() through run_command_on_workers");

# regions in a co-located distributed table, indexed on the shards, searched from the coordinator
sql("CREATE TABLE regions (photo_id int, idx int, area box, score real, embedding real[], PRIMARY KEY (photo_id, idx))");
sql("SELECT create_distributed_table('regions', 'photo_id', colocate_with => 'photos')");
sql("INSERT INTO regions SELECT p.id, r.* FROM photos p, groma_regions(p.img, 5) r");
step('regions of every row inserted by a distributed INSERT ... SELECT');
is(sql('SELECT count(*) FROM regions'), sql("SELECT sum(n) FROM (SELECT count(*) AS n FROM images,
                                              groma_regions(img, 5) GROUP BY name) c") * $rows_per_image,
   'every row has the single-node regions of its image');
sql('CREATE INDEX regions_area ON regions USING gist (area)');
is(sql("SELECT count(*) FROM run_command_on_shards('regions', \$\$SELECT count(*) FROM pg_indexes
        WHERE tablename = '%s' AND indexdef LIKE '%%gist%%'\$\$) WHERE result = '1'"),
   sql("SELECT count(*) FROM citus_shards WHERE table_name = 'regions'::regclass"), 'the GiST index is on every shard');
my $probe = "box '((0,0),(150,150))'";
is(sql("SELECT count(*) FROM regions WHERE area && $probe"),
   sql("SELECT count(*) FROM images, groma_regions(img, 5) r WHERE r.area && $probe") * $rows_per_image,
   'a search for regions overlapping a box from the coordinator finds them on both workers');

# full-text search over descriptions of the best region of some images, on the shards
sql("ALTER TABLE regions ADD COLUMN description text");
sql("UPDATE regions r SET description = groma_describe(p.img, r.area) FROM photos p
     WHERE p.id = r.photo_id AND r.idx = 1 AND r.photo_id < 12");
sql("ALTER TABLE regions ADD COLUMN words tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(description, ''))) STORED");
sql('CREATE INDEX regions_words ON regions USING gin (words)');
# the first word of the first described region (the tiny model's words are random, some answers empty)
my ($described, $word) = split /\|/, sql("SELECT r.photo_id, w FROM regions r, unnest(tsvector_to_array(r.words)) w
                                           WHERE r.idx = 1 AND r.photo_id < 12 ORDER BY r.photo_id, w LIMIT 1");
ok(defined $word && $word ne '', "the descriptions have words ('" . ($word // '') . "' for photo " . ($described // '-') . ")")
  or diag(sql("SELECT photo_id, idx, description, words FROM regions WHERE idx = 1 AND photo_id < 12 ORDER BY photo_id"));
my $described_name = sql("SELECT name FROM photos WHERE id = " . ($described // -1));
is(sql("SELECT count(*) > 0 AND bool_and(p.name = '$described_name')
        FROM regions r JOIN photos p ON p.id = r.photo_id
        WHERE r.words @@ to_tsquery('simple', quote_literal('" . ($word // '') . "'))"), 't',
   'a full-text search from the coordinator finds regions of the image described with that word');

# similarity search with pgvector, where it is installed
SKIP: {
    my ($vrc) = $coord->psql('postgres', 'CREATE EXTENSION vector');
    skip('pgvector is not installed (CREATE EXTENSION vector failed)', 2) if $vrc != 0;
    sql('CREATE INDEX regions_embedding ON regions USING hnsw ((embedding::vector(32)) vector_cosine_ops)');
    is(sql("SELECT count(*) FROM run_command_on_shards('regions', \$\$SELECT count(*) FROM pg_indexes
            WHERE tablename = '%s' AND indexdef LIKE '%%hnsw%%'\$\$) WHERE result = '1'"),
       sql("SELECT count(*) FROM citus_shards WHERE table_name = 'regions'::regclass"), 'the HNSW index is on every shard');
    # the nearest regions of photo 0's first region: its replicas (the same image) at distance 0
    is(sql("WITH q AS (SELECT embedding::vector(32) AS v FROM regions WHERE photo_id = 0 AND idx = 1)
            SELECT bool_and(r.idx = 1 AND r.photo_id % 3 = 0 AND d < 1e-6) FROM (
              SELECT photo_id, idx, embedding::vector(32) <=> (SELECT v FROM q) AS d FROM regions
              ORDER BY embedding::vector(32) <=> (SELECT v FROM q) LIMIT 5) r"), 't',
       'a "regions like this one" query from the coordinator returns the same region of the same image on any worker');
}
step('full-text and similarity search on the distributed regions');

# a worker's groma-server killed during a distributed UPDATE: the statement fails, nothing is half done
sql('UPDATE photos SET caption = NULL');
my $victim = $workers[0];
my $victim_pid = status_row($victim)->{pid};
my $q = start_query($coord, 'distupdate', 'UPDATE photos SET caption = groma_caption(img)');
my $busy = wait_until(60, sub { status_row($victim)->{served} > 0 || status_row($victim)->{running} > 0 });
kill 'KILL', $victim_pid;
my ($rc, $out, $err) = finish_query($q, 300);
step('distributed UPDATE with a worker groma-server killed');
ok(defined $rc && $rc != 0, 'the distributed UPDATE fails when a worker\'s groma-server dies under it');
like($err, qr/groma-server was terminated by signal 9|groma-server/, 'with groma\'s error from the worker')
  or diag($err);
is(sql('SELECT count(*) FROM photos WHERE caption IS NOT NULL'), 0,
   'the failed statement left no row captioned (the distributed transaction rolled back)');
ok(wait_until(60, sub { (status_row($victim)->{state} // '') eq 'ready' && status_row($victim)->{pid} ne $victim_pid }),
   'the worker\'s launcher restarted its groma-server');
sql('UPDATE photos SET caption = groma_caption(img)');
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'the retry captions every row with the single-node answer');
is(sql('SELECT count(*) FROM pg_stat_activity WHERE backend_type = \'client backend\' AND state = \'active\'
         AND query LIKE \'%groma_caption%\' AND pid <> pg_backend_pid()'), 0, 'and nothing is left running');
step('retry after the restart');
done_testing();
