# The README's "Searching regions" recipe, run on the bundled images with the
# tiny model: a table of regions filled from groma_regions (row by row, and
# by the array form groma_regions_many(bytea[]), checked against it), a GiST index on
# area used by an overlap query, full-text search over per-region
# descriptions (groma_describe, tsvector + GIN) and, where pgvector is
# installed, an HNSW index with cosine distance over embedding::vector used
# by a "regions like this one" query.  The tables are tiny, so every EXPLAIN
# runs with enable_seqscan = off: the point is that the planner can use the
# index for the query as written, which it would choose by itself on a
# table of realistic size.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;

my $tokens = 6;
my $node = groma_node('search', "groma.max_new_tokens = $tokens");
step('cluster up, model ready');

# Runs sql in the test database and returns its output.
sub sql {
    my ($sql) = @_;
    return $node->safe_psql('postgres', $sql);
}

# Returns the plan of a query with sequential scans discouraged (the tables are tiny).
sub plan_of {
    my ($sql) = @_;
    return sql("SET enable_seqscan = off; EXPLAIN (COSTS OFF) $sql");
}

my @names = ('extreme_ironing.jpg', 'synthetic_333x251.jpg', 'waterview.jpg');
sql("CREATE TABLE photos (id int PRIMARY KEY, name text, img bytea NOT NULL)");
for my $i (0 .. $#names) {
    sql("INSERT INTO photos VALUES ($i + 1, '$names[$i]', " . image_sql($names[$i]) . ")");
}

# the recipe: one row per region the model keeps
sql("CREATE TABLE regions (photo_id int REFERENCES photos, idx int, area box, score real, embedding real[],
                         PRIMARY KEY (photo_id, idx))");
sql("INSERT INTO regions SELECT p.id, r.* FROM photos p, groma_regions(p.img) r");
step('regions of 3 images inserted');
my $n = sql("SELECT count(*) FROM regions");
ok($n > 3, "regions table filled ($n regions)");
is(sql("SELECT count(DISTINCT photo_id) FROM regions"), 3, 'every image has regions');
is(sql("SELECT count(*) FROM regions r JOIN photos p ON p.id = r.photo_id
      WHERE (SELECT count(*) FROM groma_regions(p.img) g WHERE g.idx = r.idx AND g.area ~= r.area) <> 1"),
   0, 'every row is a region groma_regions returns for its image');

# the array form: the same regions, ord naming each row's image (its position in the array), NULL skipped
my $same = "SELECT count(*) FROM (SELECT v.id, g.idx, g.area, g.score FROM unnest(ARRAY[3, NULL, 1, 2])
                WITH ORDINALITY v(id, k) JOIN photos p ON p.id = v.id, groma_regions(p.img) g) one
            FULL JOIN (SELECT (ARRAY[3, NULL, 1, 2])[r.ord] AS id, r.idx, r.area, r.score
                       FROM groma_regions_many(ARRAY[(SELECT img FROM photos WHERE id = 3), NULL,
                                                (SELECT img FROM photos WHERE id = 1),
                                                (SELECT img FROM photos WHERE id = 2)]) r) arr
              ON arr.id = one.id AND arr.idx = one.idx
            WHERE arr.id IS NULL OR one.id IS NULL OR abs(arr.score - one.score) > 1e-5
               OR (arr.area[0] <-> one.area[0]) + (arr.area[1] <-> one.area[1]) > 1e-3";
is(sql($same), 0, 'groma_regions_many(bytea[]) gives each image the regions of groma_regions(bytea), ord its place '
   . '(a NULL image has none)');
is(sql("SET groma.bulk_in_flight = 1; $same"), 0, 'and so with one request in flight');
is(sql("SELECT string_agg(DISTINCT ord::text, ',') FROM groma_regions_many((SELECT array_fill(img, ARRAY[2], ARRAY[7]) "
       . "FROM photos WHERE id = 1))"), '7,8', 'ord is the subscript of the image in an array starting at 7');
is(sql("SELECT count(*) FROM groma_regions_many(ARRAY[]::bytea[])"), 0, 'an empty array has no regions');
is(sql("SELECT count(*) FROM groma_regions_many(NULL::bytea[])"), 0, 'nor a NULL array');
is(sql("SELECT max(n) FROM (SELECT ord, count(*) AS n FROM groma_regions_many((SELECT array_agg(img) FROM photos), 2) "
       . "GROUP BY ord) s"), 2, 'max_regions cuts each image');
is(sql("SELECT count(*) FROM groma_regions_many((SELECT array_agg(img) FROM photos), 100, 1)"), 0,
   'min_score 1 keeps no region');
my ($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM groma_regions_many(ARRAY[(SELECT img FROM photos WHERE id = 1),
                                   substring((SELECT img FROM photos WHERE id = 3) FOR 4000)])",
                                   extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22P03.*CONTEXT:  the image imgs\[2\] of the array/s,
     'an image cut short in the array fails the call with 22P03, naming it');
($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM groma_regions_many(ARRAY[(SELECT img FROM photos WHERE id = 1)], 0)",
                                extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22023.*max_regions must be at least 1/s, 'max_regions 0 is refused before anything is sent');
($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM groma_regions_many(ARRAY[[(SELECT img FROM photos WHERE id = 1)]])",
                                extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/2202E.*one-dimensional/s, 'a two-dimensional array is refused');
# the README's bulk form of the recipe
sql("CREATE TABLE regions2 (LIKE regions)");
sql("INSERT INTO regions2
     SELECT b.ids[r.ord], r.idx, r.area, r.score, r.embedding
     FROM (SELECT array_agg(id ORDER BY id) AS ids, array_agg(img ORDER BY id) AS imgs
           FROM photos WHERE id NOT IN (SELECT photo_id FROM regions2)) b,
          groma_regions_many(b.imgs) r");
is(sql("SELECT count(*) FROM regions r FULL JOIN regions2 s USING (photo_id, idx)
        WHERE r.photo_id IS NULL OR s.photo_id IS NULL OR (r.area[0] <-> s.area[0]) + (r.area[1] <-> s.area[1]) > 1e-3"),
   0, 'the bulk insert fills the same regions as the row-by-row one');
# groma_progress shows an array call of regions while it runs
my $aq = start_query($node, 'arr', "SELECT count(*) FROM groma_regions_many((SELECT array_agg(img) FROM photos, "
                     . "generate_series(1, 8)))");
ok(wait_until(120, sub {
    sql("SELECT count(*) FROM groma_progress WHERE phase = 'finding regions in an array' AND rows_total = 24
           AND pid = (SELECT pid FROM pg_stat_activity WHERE application_name = 'arr')") == 1 }),
   'groma_progress shows the array call finding regions');
my ($arc) = finish_query($aq, 120);
is($arc, 0, 'it finishes');
is(sql("SELECT count(*) FROM groma_progress"), 0, 'and leaves groma_progress');
step('array form checked');

# GiST on area: regions overlapping a box
sql("CREATE INDEX regions_area_idx ON regions USING gist (area)");
sql("ANALYZE regions");
my $probe = "box '((0,0),(120,120))'";
my $overlap = "SELECT photo_id, idx FROM regions WHERE area && $probe ORDER BY photo_id, idx";
like(plan_of($overlap), qr/Index Scan (using|on) regions_area_idx/, 'the overlap query uses the GiST index');
my $want = sql("SET enable_indexscan = off; SET enable_bitmapscan = off; $overlap");
my $got = sql("SET enable_seqscan = off; $overlap");
is($got, $want, 'the index finds the same regions as a sequential scan');
ok($got ne '', 'some regions overlap the top-left corner');
like(plan_of("SELECT photo_id FROM regions WHERE area @> box '((10,10),(20,20))'"),
    qr/Index Scan (using|on) regions_area_idx/, 'a containment query uses the GiST index too');

# full-text search over descriptions of the top 3 regions per image
sql("ALTER TABLE regions ADD COLUMN description text");
sql("UPDATE regions r SET description = groma_describe(p.img, r.area)
   FROM photos p WHERE p.id = r.photo_id AND r.idx <= 3");
step('top 3 regions of each image described');
is(sql("SELECT count(*) FROM regions WHERE description IS NOT NULL"), 9, 'nine regions described');
is(sql("SELECT count(*) FROM regions r JOIN photos p ON p.id = r.photo_id
      WHERE r.photo_id = 1 AND r.idx = 1 AND r.description IS DISTINCT FROM groma_describe(p.img, r.area)"),
   0, 'a stored description equals groma_describe of the region');
sql("ALTER TABLE regions ADD COLUMN words tsvector
   GENERATED ALWAYS AS (to_tsvector('simple', coalesce(description, ''))) STORED");
sql("CREATE INDEX regions_words_idx ON regions USING gin (words)");
sql("ANALYZE regions");
# the tiny model's words are random: take one that a description actually holds
my $word = sql("SELECT word FROM ts_stat('SELECT words FROM regions') WHERE word ~ '^[[:alpha:]]{2,}\$'
              ORDER BY ndoc, word LIMIT 1");
SKIP: {
    skip("no description has an alphabetic word to search for", 3) if $word eq '';
    note("searching for '$word'");
    my $find = "SELECT DISTINCT p.name FROM photos p JOIN regions r ON r.photo_id = p.id
                WHERE r.words @@ to_tsquery('simple', quote_literal('$word')) ORDER BY 1";
    like(plan_of($find), qr/Bitmap Index Scan on regions_words_idx/, 'the word query uses the GIN index');
    my $images = sql("SET enable_seqscan = off; $find");
    ok($images ne '', "the word '$word' finds images: " . join(', ', split(/\n/, $images)));
    my $expect = sql("SELECT string_agg(DISTINCT p.name, E'\\n' ORDER BY p.name) FROM photos p JOIN regions r
                    ON r.photo_id = p.id WHERE ' ' || lower(r.description) || ' ' ~ ('[^[:alpha:]]' || '$word' || '[^[:alpha:]]')");
    is($images, $expect, 'exactly the images with a region described by that word');
}

# pgvector: cosine distance over embedding::vector in an HNSW index
($rc, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION vector');
SKIP: {
    skip("pgvector is not installed (CREATE EXTENSION vector: " . ($err =~ s/\s+/ /gr) .
         "); test/run.sh builds it from ../shared/third_party when that exists", 5) if $rc != 0;
    my $dim = sql("SELECT DISTINCT array_length(embedding, 1) FROM regions");
    is($dim, 32, 'the tiny model\'s embeddings have 32 values');
    sql("CREATE INDEX regions_embedding_idx ON regions USING hnsw ((embedding::vector($dim)) vector_cosine_ops)");
    sql("ANALYZE regions");
    my $like = "SELECT r.photo_id, r.idx FROM regions r
                ORDER BY r.embedding::vector($dim) <=> (SELECT embedding::vector($dim) FROM regions
                                                         WHERE photo_id = 1 AND idx = 1)
                LIMIT 5";
    like(plan_of($like), qr/Index Scan using regions_embedding_idx/, 'the "regions like this one" query uses the HNSW index');
    my @near = split(/\n/, sql("SET enable_seqscan = off; $like"));
    is(scalar(@near), 5, 'five nearest regions');
    is($near[0], '1|1', 'the nearest region to a region\'s own embedding is itself');
    my $exact_set = sql("SET enable_indexscan = off; SELECT string_agg(photo_id || '|' || idx, E'\\n') FROM (
                         SELECT photo_id, idx FROM regions ORDER BY embedding::vector($dim) <=>
                           (SELECT embedding::vector($dim) FROM regions WHERE photo_id = 1 AND idx = 1) LIMIT 5) s");
    is(join("\n", @near), $exact_set, 'the index returns the exact five nearest (small graph)');
}
is(status_row($node)->{restarts}, '0', 'groma-server never restarted');
done_testing();
