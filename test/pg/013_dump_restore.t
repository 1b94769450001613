# Captioned tables survive pg_dump and pg_restore, as the README promises:
# a database with groma's types in stored columns (a caption column filled
# by groma_caption_table, a regions table with boxes, scores, embeddings
# and, where pgvector is installed, an HNSW index), an image column under
# CHECK (groma_image_validate(img)), and the extension WITH SCHEMA a
# schema of its own, is dumped (custom format) and restored into a new
# database while groma-server runs without a model: every stored row comes
# back equal and no model call is made.  The dump names the extension once
# (its functions, types and view are not dumped one by one).  A table with
# a generated column calling groma_caption fails to load without the model
# (the README's warning) while the other tables load; restored again with
# the model ready, the generated captions are recomputed equal to the
# source's.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use IPC::Run;
use Test::More;

my $node = groma_node('dump', "groma.max_new_tokens = 8");
step('cluster up, model ready');

my $vector = $node->psql('postgres', 'CREATE EXTENSION vector; DROP EXTENSION vector') == 0;
note($vector ? 'pgvector is installed: the regions get a vector column and an HNSW index'
  : 'pgvector is not installed: the regions table has no vector column (the rest runs)');

$node->safe_psql('postgres', 'CREATE DATABASE src');
my @images = ('synthetic_333x251.jpg', 'extreme_ironing.jpg', 'waterview.jpg');
my $values = join(', ', map { "($_, " . image_sql($images[$_ - 1]) . ")" } 1 .. 3);
$node->safe_psql('src', qq{
    CREATE SCHEMA ml;
    CREATE EXTENSION groma WITH SCHEMA ml;
    @{[ $vector ? 'CREATE EXTENSION vector;' : '' ]}
    CREATE TABLE photos (id int PRIMARY KEY, img bytea CHECK (ml.groma_image_validate(img)),
                         caption ml.groma_answer, detailed text);
    INSERT INTO photos (id, img) VALUES $values, (4, NULL);
    CREATE TABLE regions (photo_id int, idx int, area box, score real, embedding real[],
                          @{[ $vector ? 'vec vector(32),' : '' ]} PRIMARY KEY (photo_id, idx));
    INSERT INTO regions (photo_id, idx, area, score, embedding)
        SELECT p.id, r.idx, r.area, r.score, r.embedding FROM photos p, ml.groma_regions(p.img) r;
    @{[ $vector ? 'UPDATE regions SET vec = embedding::vector;
                   CREATE INDEX regions_vec ON regions USING hnsw (vec vector_l2_ops);' : '' ]}
    CREATE INDEX regions_area ON regions USING gist (area);
    CREATE TABLE gen_photos (id int PRIMARY KEY, img bytea,
                             cap ml.groma_answer GENERATED ALWAYS AS (ml.groma_caption(img)) STORED);
    INSERT INTO gen_photos (id, img) VALUES $values;
});
$node->safe_psql('src', "CALL ml.groma_caption_table('photos', 'img', 'caption', 2)");
$node->safe_psql('src', "UPDATE photos SET detailed = (ml.groma_caption(img, true)).text WHERE img IS NOT NULL");
is($node->safe_psql('src', 'SELECT count(*) FROM photos WHERE caption IS NOT NULL AND detailed IS NOT NULL'), '3',
    'the source has three captioned photos');
ok($node->safe_psql('src', 'SELECT count(*) FROM regions') > 0, 'the source has regions');
is($node->safe_psql('src', 'SELECT count(*) FROM gen_photos WHERE cap IS NOT NULL'), '3',
    'the generated column is filled');
step('source database captioned');

# One text per table: its rows in key order, as PostgreSQL prints them (floats round-trip exactly).
my %key = (photos => 'id', regions => 'photo_id, idx', gen_photos => 'id');
sub table_text {
    my ($db, $table) = @_;
    return $node->safe_psql($db, "SELECT string_agg(t::text, E'\\n' ORDER BY $key{$table}) FROM $table t");
}
my %source = map { $_ => table_text('src', $_) } keys %key;

my $dump = $node->basedir . '/src.dump';
my ($out, $err) = ('', '');
ok(IPC::Run::run(['pg_dump', '-Fc', '-h', $node->host, '-p', $node->port, '-f', $dump, 'src'],
    '>', \$out, '2>', \$err), 'pg_dump -Fc of the source succeeds') or diag($err);
IPC::Run::run(['pg_restore', '-l', $dump], '>', \$out, '2>', \$err);
like($out, qr/EXTENSION - groma\b/, 'the dump creates the extension');
unlike($out, qr/(FUNCTION|TYPE|VIEW) ml groma_/, 'and does not dump its members one by one');
step('pg_dump');

# Reloads with groma.model_path = path and waits for groma-server's state.
sub reload_model {
    my ($path, $state) = @_;
    $node->safe_psql('postgres', "ALTER SYSTEM SET groma.model_path = '$path'");
    $node->safe_psql('postgres', 'SELECT pg_reload_conf()');
    return wait_until(60, sub { my $r = status_row($node); $r->{model_path} eq $path && $r->{state} eq $state });
}

# Creates database db and restores the dump into it; returns (exit code, stderr).
sub restore_into {
    my ($db) = @_;
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    my ($o, $e) = ('', '');
    IPC::Run::run(['pg_restore', '-h', $node->host, '-p', $node->port, '-d', $db, $dump], '>', \$o, '2>', \$e);
    return ($? >> 8, $e);
}

ok(reload_model('', 'no_model'), 'groma-server runs without a model');
my %before = %{ status_row($node) };
my ($rc, $stderr) = restore_into('dst');
isnt($rc, 0, 'restoring without a model reports an error');
like($stderr, qr/gen_photos/, 'for the table whose generated column calls groma_caption')
  or diag($stderr);
my @errors = ($stderr =~ /^pg_restore: error: (.*)$/mg);
is(scalar(grep { !/gen_photos|groma.model_path|model/i } @errors), 0, 'and for nothing else') or diag($stderr);
for my $table ('photos', 'regions') {
    is(table_text('dst', $table), $source{$table}, "$table is restored equal, row for row, without the model");
}
is($node->safe_psql('dst', 'SELECT count(*) FROM gen_photos'), '0', 'gen_photos is left empty');
is($node->safe_psql('dst', 'SELECT count(*) FROM photos WHERE (caption).groundings IS NOT NULL'),
    $node->safe_psql('src', 'SELECT count(*) FROM photos WHERE (caption).groundings IS NOT NULL'),
    'the groundings (arrays of composites with box arrays) came back');
is($node->safe_psql('dst', q{SELECT count(*) FROM regions WHERE area && box '((0,0),(5000,5000))'}),
    $node->safe_psql('src', 'SELECT count(*) FROM regions'), 'the GiST index on the boxes answers');
if ($vector) {
    my $nearest = 'SET enable_seqscan = off; SELECT photo_id, idx FROM regions ORDER BY vec <-> '
      . '(SELECT vec FROM regions ORDER BY photo_id, idx LIMIT 1) LIMIT 3';
    is($node->safe_psql('dst', $nearest), $node->safe_psql('src', $nearest),
        'the HNSW index answers the same nearest regions');
}
# image checks are answered beside the queue and not counted; the model requests are
my %after = %{ status_row($node) };
is($after{served}, $before{served}, 'the restore made no model call that succeeded');
is($after{failed}, $before{failed} + 1, 'and one that failed: the first row of gen_photos, which ended its COPY')
  or diag(explain(\%after));
is($node->safe_psql('dst', "SELECT count(*) FROM photos WHERE id = 1 AND ml.groma_image_validate(img)"), '1',
    'the restored CHECK runs on the server without a model');
step('restore without a model');

ok(reload_model($model, 'ready'), 'the model is back');
($rc, $stderr) = restore_into('dst2');
is($rc, 0, 'with the model ready the whole dump restores') or diag($stderr);
is(table_text('dst2', $_), $source{$_}, "$_ is equal to the source's") for sort keys %key;
step('restore with the model');

$node->stop;
done_testing();
