# groma on Citus: a coordinator and two workers on this machine, each with
# groma preloaded and its own groma-server (the tiny model on the CPU).  A
# table of the bundled images, replicated to a few hundred rows, is
# distributed; a distributed UPDATE captions every row exactly once, on
# the workers (both groma-servers serve), with the single-node answers; the
# regions of every image go into a co-located distributed table with GiST,
# full-text (GIN over groma_describe's words) and, where pgvector is
# installed, HNSW indexes, searched from the coordinator.  CALL
# groma_caption_table on the distributed table runs one job per shard on the
# workers (groma_progress_cluster() shows them, the coordinator's
# groma-server serves none), captions every row once; cancelled on the
# coordinator, the shard jobs stop and the next CALL captions the rest; a
# worker's groma-server killed under it is waited for, and the CALL
# completes; one that cannot load its model fails only that worker's
# shard jobs, and the next CALL finishes; a row with a truncated JPEG is left
# NULL with a warning while the rest is captioned; a table named like a
# shard in a schema first on a worker connection's search_path is left
# alone (shard names are schema-qualified); a shard move asked for during
# the CALL waits for it and no caption is lost; with one job per node at a
# time the shards run in rounds; a role without UPDATE and a partitioned
# table are refused before any job; a reference table is refused.  A
# worker's groma-server killed in the middle of a distributed UPDATE makes
# the statement fail cleanly (no row half-captioned) and the retry captions
# everything.  Skips, saying why,
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

# 40 rows an image keep the test near 4 minutes on 2 cores (every step's time grows with the rows)
my $rows_per_image = $ENV{GROMA_CITUS_ROWS} || 40;
my $conf = "shared_preload_libraries = 'citus,groma'\ngroma.threads = 1\ngroma.max_new_tokens = 4\n"
  . "max_connections = 60\ncitus.shard_count = 4\n"
  # a shard move connects to its own node over TCP (citus.local_hostname, localhost)
  . "listen_addresses = 'localhost'";
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
# the first 30 % of the rows), as images/s
sql('CREATE TABLE photos_local AS SELECT id, name, img, NULL::groma_answer AS caption FROM photos WHERE id < '
    . int(0.9 * $rows_per_image));
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

# the resumable bulk path on the distributed table: one job per shard on the workers, all at once.  A
# decoy on worker 1 named like one of its shards, in a schema first on the search_path of a worker
# connection ("$user"): the job names its shard schema-qualified and never touches it.
my $decoy = $workers[0]->safe_psql('postgres', "SET citus.override_table_visibility = off; SELECT relname FROM pg_class WHERE relname ~ '^photos_[0-9]+\$'
                                               ORDER BY relname LIMIT 1");
$workers[0]->safe_psql('postgres', "SET citus.enable_ddl_propagation = off; CREATE SCHEMA postgres;
    CREATE TABLE postgres.$decoy (id int, name text, img bytea, caption groma_answer);
    INSERT INTO postgres.$decoy SELECT 1, name, img FROM (VALUES (" . image_sql('waterview.jpg') . ")) v(img),
                                (VALUES ('decoy')) n(name)");
sql('UPDATE photos SET caption = NULL');
my $coord_served = sql('SELECT served FROM groma_status()');
$served_before = worker_served();
my %nodes_seen;
$t0 = time;
my ($rc, $out, $err) = run_bulk('bulk', 8, sub {
    $nodes_seen{$_} = 1 for split /\n/, sql("SELECT node FROM groma_progress_cluster() WHERE node <> 'local'");
});
note(sprintf('figure: %.2f images/s by CALL groma_caption_table on two workers (%d captions)',
             $n_rows / (time - $t0), $n_rows));
step('CALL groma_caption_table on the distributed table');
is($rc, 0, 'CALL groma_caption_table on a distributed table succeeds') or diag($err);
like($err, qr/groma_caption_table: $n_rows of $n_rows rows are captioned now, after 4 shard jobs on the workers/,
     'its NOTICE counts the rows and the shard jobs');
is($workers[0]->safe_psql('postgres', "SELECT count(*) FROM postgres.$decoy WHERE caption IS NULL"), 1,
   "a table named like a shard ($decoy) in a schema earlier on the workers' search_path is left alone");
$workers[0]->safe_psql('postgres', 'SET citus.enable_ddl_propagation = off; DROP SCHEMA postgres CASCADE');
# a shard job called by hand (nothing left to caption) gives the session back its two settings as they were
my ($shard, $shard_port) = split /\|/, sql("SELECT shard_name, nodeport FROM citus_shards
                                              WHERE table_name = 'photos'::regclass ORDER BY shardid LIMIT 1");
my ($shard_node) = grep { $_->port == $shard_port } @workers;
# (shards are hidden from pg_class on a client's connection: shown, as on the connections of the shard jobs)
is($shard_node->safe_psql('postgres', "SET citus.override_table_visibility = off;
        CALL groma_caption_shard('public.$shard', 'img', 'caption', 4, false);
        SELECT current_setting('client_connection_check_interval') || ','
               || current_setting('citus.enable_manual_changes_to_shards')"), '0,off',
   'groma_caption_shard called by hand leaves client_connection_check_interval and the manual-changes setting as they were');
is(scalar(keys %nodes_seen), 2, 'groma_progress_cluster() showed shard jobs running on both workers ('
   . join(', ', sort keys %nodes_seen) . ')');
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'every row is captioned with the single-node answer');
@served_after = @{ worker_served() };
@delta = map { $served_after[$_] - $served_before->[$_] } (0, 1);
ok($delta[0] > 0 && $delta[1] > 0, "both workers' groma-servers served the shard jobs ($delta[0] + $delta[1])");
is($delta[0] + $delta[1], $n_rows, 'one request per row: every row was captioned exactly once');
is(sql('SELECT served FROM groma_status()'), $coord_served, "the coordinator's groma-server served none of it");
is(sql('SELECT count(*) FROM groma_progress_cluster()'), 0, 'and no job is left in groma_progress_cluster()');

# cancelled on the coordinator: the shard jobs stop, their committed chunks stay, the next CALL finishes
# (on two rows in five, spread over every shard, to keep the test short)
my $n_sub = sql('SELECT count(*) FROM photos WHERE id % 5 < 2');
sql('UPDATE photos SET caption = NULL WHERE id % 5 < 2');
my $kept;
($rc, $out, $err) = run_bulk('bulkcancel', 4, sub {
    return if sql('SELECT count(*) FROM photos WHERE caption IS NULL') > $n_sub - 8;
    sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'bulkcancel'");
});
ok($rc != 0 && $err =~ /canceling statement due to user request/, 'the CALL is cancelled on the coordinator')
  or diag($err);
ok(wait_until(30, sub { sql('SELECT count(*) FROM groma_progress_cluster()') == 0 }),
   'the shard jobs on the workers stop (their coordinator connection is gone)');
$kept = sql('SELECT count(*) FROM photos WHERE caption IS NOT NULL') - ($n_rows - $n_sub);
ok($kept >= 8 && $kept < $n_sub, "the committed chunks stay ($kept of $n_sub rows)");
sleep 1.5;
is(sql('SELECT count(*) FROM photos WHERE caption IS NOT NULL') - ($n_rows - $n_sub), $kept,
   'and nothing goes on behind the cancel');
($rc, $out, $err) = run_bulk('bulkresume', 8);
is($rc, 0, 'the next CALL succeeds') or diag($err);
like($err, qr/groma_caption_table: @{[$n_sub - $kept]} of @{[$n_sub - $kept]} rows are captioned now/,
     'captioning only the rows left');
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'every row has the single-node answer');
step('cancelled and resumed CALL');

# a worker's groma-server killed under its shard jobs: they wait for its restart and caption the lost chunk's rows
# again, one at a time, so the CALL completes
sql('UPDATE photos SET caption = NULL WHERE id % 5 < 2');
my $doomed = status_row($workers[1])->{pid};
my $doomed_served = status_row($workers[1])->{served};
# (killed once it has answered a request of these jobs, so while their chunks run)
($rc, $out, $err) = run_bulk('bulkkill', 4, sub {
    kill('KILL', $doomed) if status_row($workers[1])->{served} > $doomed_served && proc_alive($doomed);
});
ok(!proc_alive($doomed), "the worker's groma-server was killed under the shard jobs");
is($rc, 0, 'CALL groma_caption_table completes all the same') or diag($err);
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'every row has the single-node answer');
step('CALL with a worker groma-server killed');

# a worker whose groma-server cannot load its model: its shard jobs fail, named; the others finish; once it is
# mended the next CALL completes
sql('UPDATE photos SET caption = NULL WHERE id % 5 < 2');
$workers[1]->safe_psql('postgres', "ALTER SYSTEM SET groma.model_path = '/nonexistent/groma-model'; SELECT pg_reload_conf()");
ok(wait_until(60, sub { (status_row($workers[1])->{state} // '') eq 'failed' }),
   "that worker's groma-server cannot load its model");
($rc, $out, $err) = run_bulk('bulkfail', 4);
my $on_doomed = sql("SELECT count(*) FROM citus_shards WHERE table_name = 'photos'::regclass
                      AND nodeport = " . $workers[1]->port);
ok($rc != 0, 'CALL groma_caption_table fails when a worker groma-server cannot serve its shard jobs');
ok($err =~ /groma_caption_table: (\d+) of 4 shard jobs failed .*could not load its model.*HINT:  .*calling it again/s
   && $1 == $on_doomed, "naming the failed shard jobs (the $on_doomed of that worker) and what to do")
  or diag($err);
$workers[1]->safe_psql('postgres', 'ALTER SYSTEM RESET groma.model_path; SELECT pg_reload_conf()');
ok(wait_until(60, sub { (status_row($workers[1])->{state} // '') eq 'ready' }), "that worker's groma-server is back");
($rc, $out, $err) = run_bulk('bulkretry', 8);
is($rc, 0, 'the next CALL succeeds') or diag($err);
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'and every row has the single-node answer');
step('CALL with a worker groma-server unable to load, then again');

# a truncated JPEG in one row: its shard job leaves that row NULL and captions the rest, the coordinator warns
sql("INSERT INTO photos (id, name, img) SELECT 1000000, 'broken', substring(img FROM 1 FOR 3000) FROM images
     WHERE name = 'waterview.jpg'");
sql('UPDATE photos SET caption = NULL WHERE id % 5 = 0');
($rc, $out, $err) = run_bulk('bulkbroken', 4);
is($rc, 0, 'CALL groma_caption_table succeeds with a truncated JPEG in one row') or diag($err);
like($err, qr/WARNING:  (?:01000: )?groma_caption_table: 1 row\(s\) of (?:public\.)?photos are still NULL after the shard jobs/,
     'the coordinator warns that one row is still NULL') or diag($err);
is(sql('SELECT string_agg(id::text, \',\') FROM photos WHERE caption IS NULL'), '1000000', 'only the broken row');
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'every other row has the single-node answer');
sql('DELETE FROM photos WHERE id = 1000000');
step('CALL with a truncated JPEG in one row');

# a shard move started while the CALL runs waits for it (the CALL holds the shards' metadata lock as a
# distributed UPDATE does), so no committed chunk is written to a placement the move has already copied
sql('UPDATE photos SET caption = NULL WHERE id % 5 < 2');
my ($moved, $from_port) = split /\|/, sql("SELECT shardid, nodeport FROM citus_shards WHERE table_name = 'photos'::regclass
                                           AND nodeport = " . $workers[0]->port . " ORDER BY shardid LIMIT 1");
my $move_sql = sub {
    my ($from, $to) = @_;
    return "SELECT citus_move_shard_placement($moved, '" . $from->host . "', " . $from->port . ", '" . $to->host
      . "', " . $to->port . ", shard_transfer_mode => 'block_writes')";
};
my ($move, $move_waited) = (undef, 0);
($rc, $out, $err) = run_bulk('bulkmove', 4, sub {
    if (!$move && sql("SELECT count(*) FROM groma_progress_cluster() WHERE node <> 'local'") > 0) {
        $move = start_query($coord, 'move', $move_sql->($workers[0], $workers[1]));
        return;
    }
    $move_waited ||= sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'move'
                           AND wait_event_type = 'Lock'") > 0 if $move;
});
is($rc, 0, 'CALL groma_caption_table succeeds while a shard move is asked for') or diag($err);
ok($move, 'the move was started while shard jobs ran');
ok($move_waited, 'the move waited for a lock while the CALL ran');
my ($mrc, $mout, $merr) = finish_query($move, 120);
is($mrc, 0, 'then it finished') or diag($merr);
is(sql("SELECT nodeport FROM citus_shards WHERE shardid = $moved"), $workers[1]->port, 'the shard is on the other worker');
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'no caption was lost: every row has the single-node answer');
sql('CALL citus_cleanup_orphaned_resources()');
sql($move_sql->($workers[1], $workers[0]));
step('CALL beside a shard move');

# at most citus.max_adaptive_executor_pool_size jobs per node at a time: with 1, the 4 shards run in 2 rounds
sql('UPDATE photos SET caption = NULL WHERE id % 5 = 1');
sql('ALTER ROLE postgres SET citus.max_adaptive_executor_pool_size = 1');
my $most = 0;
($rc, $out, $err) = run_bulk('bulkrounds', 4, sub {
    my $n = sql("SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c FROM groma_progress_cluster()
                 WHERE node <> 'local' GROUP BY node) s");
    $most = $n if $n > $most;
});
sql('ALTER ROLE postgres RESET citus.max_adaptive_executor_pool_size');
is($rc, 0, 'with one job per node at a time the CALL succeeds') or diag($err);
is($most, 1, 'and no node ran two shard jobs at once');
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'every row has the single-node answer');
step('CALL in rounds of one job per node');

# refused on the coordinator before any job: a role without UPDATE, a partitioned distributed table
sql("CREATE ROLE reader LOGIN; GRANT SELECT ON photos TO reader");
sql('UPDATE photos SET caption = NULL WHERE id = 1');
$served_before = worker_served();
($rc, $out, $err) = $coord->psql('postgres', "SET ROLE reader; CALL groma_caption_table('photos', 'img', 'caption')",
                                 extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/42501: permission denied for table (?:public\.)?photos/, 'a role without UPDATE is refused with 42501')
  or diag($err);
is_deeply(worker_served(), $served_before, 'before any shard job ran');
sql('UPDATE photos SET caption = groma_caption(img) WHERE id = 1');
sql("CREATE TABLE parted (id int, img bytea, caption text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
     CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
     SELECT create_distributed_table('parted', 'id')");
($rc, $out, $err) = $coord->psql('postgres', "CALL groma_caption_table('parted', 'img', 'caption')",
                                 extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/0A000: groma_caption_table: (?:public\.)?parted has partitions.*HINT:  CALL it on each partition/s,
     'a partitioned distributed table is refused on the coordinator, with the hint') or diag($err);

# a reference table is refused, saying how to caption it instead
sql('CREATE TABLE ref_photos (img bytea, caption text)');
sql("SELECT create_reference_table('ref_photos')");
($rc, $out, $err) = $coord->psql('postgres', "CALL groma_caption_table('ref_photos', 'img', 'caption')");
like($err, qr/works on hash-distributed Citus tables, and (?:public\.)?ref_photos is not one.*HINT:  Caption it with UPDATE/s,
     'a reference table is refused with a hint') or diag($err);

# Runs CALL groma_caption_table('photos', ...) with this chunk as application_name app, calling poll (if any)
# every 0.2 s while it runs; returns (exit code, stdout, stderr).
sub run_bulk {
    my ($app, $chunk, $poll) = @_;
    my $q = start_query($coord, $app, "CALL groma_caption_table('photos', 'img', 'caption', chunk => $chunk)");
    my $until = time + 600;
    while ($poll && time < $until) {
        $q->{h}->pump_nb;
        last unless $q->{h}->pumpable;
        $poll->();
        sleep 0.2;
    }
    my ($code, $o, $e) = finish_query($q, 600);
    return ($code, $o, $e);
}

# a worker's groma-server killed during a distributed UPDATE: the statement fails, nothing is half done
# (the same two rows in five)
sql('UPDATE photos SET caption = NULL WHERE id % 5 < 2');
my $victim = $workers[0];
my $victim_pid = status_row($victim)->{pid};
my $q = start_query($coord, 'distupdate', 'UPDATE photos SET caption = groma_caption(img) WHERE id % 5 < 2');
my $busy = wait_until(60, sub { status_row($victim)->{served} > 0 || status_row($victim)->{running} > 0 });
kill 'KILL', $victim_pid;
($rc, $out, $err) = finish_query($q, 300);
step('distributed UPDATE with a worker groma-server killed');
ok(defined $rc && $rc != 0, 'the distributed UPDATE fails when a worker\'s groma-server dies under it');
like($err, qr/groma-server was terminated by signal 9|groma-server/, 'with groma\'s error from the worker')
  or diag($err);
is(sql('SELECT count(*) FROM photos WHERE caption IS NOT NULL AND id % 5 < 2'), 0,
   'the failed statement left no row captioned (the distributed transaction rolled back)');
ok(wait_until(60, sub { (status_row($victim)->{state} // '') eq 'ready' && status_row($victim)->{pid} ne $victim_pid }),
   'the worker\'s launcher restarted its groma-server');
sql('UPDATE photos SET caption = groma_caption(img) WHERE id % 5 < 2');
is(sql('SELECT count(*) FROM photos p JOIN single s USING (name) WHERE p.caption::text = s.caption'), $n_rows,
   'the retry captions every row with the single-node answer');
is(sql('SELECT count(*) FROM pg_stat_activity WHERE backend_type = \'client backend\' AND state = \'active\'
         AND query LIKE \'%groma_caption%\' AND pid <> pg_backend_pid()'), 0, 'and nothing is left running');
step('retry after the restart');
done_testing();
