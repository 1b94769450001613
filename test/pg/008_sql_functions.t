# The SQL functions on the tiny model equal the command line for the same
# image and prompt (so the goldens carry over): groma_regions and
# groma_proposals equal --regions, groma_caption, groma_ground and
# groma_describe equal --task caption|caption-detailed|ground|describe with
# --max-new-tokens equal to groma.max_new_tokens (embeddings: --regions
# --embeddings).  Region embeddings have
# the region encoder's width and are deterministic; every box lies inside
# the image; bad input that needs the model fails with a specific SQLSTATE;
# in a LATIN1 database text is converted to and from groma-server's UTF-8.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use Test::More;
use IPC::Run;
use JSON::PP qw(decode_json);
use Digest::MD5 qw(md5_hex);
use Encode qw(encode_utf8);

my $tokens = 12;
my $node = groma_node('sqlfn', "groma.max_new_tokens = $tokens");
step('cluster up, model ready');

# Runs groma-server's command line on the tiny model; returns its decoded JSON output.
sub cli {
    my @args = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run(['groma-server', '--model', $model, '--device', 'cpu', @args], '>', \$out, '2>', \$err)
      or die "groma-server @args: $err";
    return decode_json($out);
}

# Returns the rows of a query as arrays of columns (unit separator between columns).
sub rows {
    my ($sql) = @_;
    my $out = $node->safe_psql('postgres', $sql, extra_params => ['-F', "\x1f"]);
    return [map { [split(/\x1f/, $_, -1)] } grep { $_ ne '' } split(/\n/, $out)];
}

# True when two lists of numbers agree within tol.
sub close_to {
    my ($a, $b, $tol) = @_;
    return 0 unless @$a == @$b;
    for my $i (0 .. $#$a) { return 0 if abs($a->[$i] - $b->[$i]) > $tol }
    return 1;
}

# The boxes of a box[] printed by SQL, as corner lists x1, y1, x2, y2 (box prints (x2,y2),(x1,y1)).
sub sql_boxes {
    my ($text) = @_;
    my @boxes;
    while ($text =~ /\(([-\d.e+]+),([-\d.e+]+)\),\(([-\d.e+]+),([-\d.e+]+)\)/g) {
        push @boxes, [$3, $4, $1, $2];
    }
    return \@boxes;
}

for my $name ('synthetic_333x251.jpg', 'extreme_ironing.jpg', 'waterview.jpg') {
    my $path = "$root/test/golden/images/$name";
    my $img = image_sql($name);
    my $want = cli('--regions', $path, '--embeddings');
    my ($w, $h) = ($want->{width}, $want->{height});

    # groma_regions: the same boxes and scores, in the same order, idx from 1
    my $got = rows("SELECT idx, (area[1])[0], (area[1])[1], (area[0])[0], (area[0])[1], score,
                           array_to_string(embedding, ' ') FROM groma_regions($img) ORDER BY idx");
    is(scalar(@$got), scalar(@{$want->{regions}}), "$name: groma_regions keeps as many regions as --regions")
      or next;
    my ($boxes_ok, $scores_ok, $idx_ok, $inside, $embed_ok) = (1, 1, 1, 1, 1);
    for my $i (0 .. $#$got) {
        my ($idx, @rest) = @{$got->[$i]};
        my @box = @rest[0 .. 3];
        $idx_ok &&= $idx == $i + 1;
        $boxes_ok &&= close_to(\@box, $want->{regions}[$i]{box}, 1e-6);
        $scores_ok &&= close_to([$rest[4]], [$want->{regions}[$i]{score}], 1e-6);
        $inside &&= $box[0] >= 0 && $box[1] >= 0 && $box[2] <= $w && $box[3] <= $h;
        # both print enough digits to round-trip a float: compare as float32
        $embed_ok &&= join(' ', map { unpack('f', pack('f', $_)) } split(/ /, $rest[5])) eq
          join(' ', map { unpack('f', pack('f', $_)) } @{$want->{regions}[$i]{embedding}});
    }
    ok($idx_ok, "$name: idx counts from 1 in score order");
    ok($boxes_ok, "$name: the boxes equal --regions'");
    ok($scores_ok, "$name: the scores equal --regions'");
    ok($inside, "$name: every box lies inside the ${w}x$h image");
    ok($embed_ok, "$name: the embeddings equal --regions --embeddings'");

    # groma_proposals: the same boxes as an array; the cuts as --regions' own
    my $prop = sql_boxes($node->safe_psql('postgres', "SELECT groma_proposals($img)"));
    ok(close_to([map {@$_} @$prop], [map { @{$_->{box}} } @{$want->{regions}}], 1e-6),
        "$name: groma_proposals equals --regions' boxes");
    my $n3 = $node->safe_psql('postgres', "SELECT array_length(groma_proposals($img, 3), 1)");
    is($n3, 3, "$name: max_regions 3 keeps 3");
    my $above = grep { $_->{score} > 0.2 } @{$want->{regions}};
    is($node->safe_psql('postgres', "SELECT count(*) FROM groma_regions($img, 100, 0.2)"), $above,
        "$name: min_score 0.2 keeps the regions scoring above 0.2");

    # groma_caption (brief and detailed): the same text and groundings as --task caption
    for my $detailed ('false', 'true') {
        my $task = $detailed eq 'true' ? 'caption-detailed' : 'caption';
        my $c = cli('--image', $path, '--task', $task, '--max-new-tokens', $tokens);
        my $r = rows("SELECT md5((c).text), coalesce(array_length((c).groundings, 1), 0)
                      FROM (SELECT groma_caption($img, $detailed) AS c) s");
        is_deeply($r->[0], [md5_hex(encode_utf8($c->{text})), scalar(@{$c->{groundings}})],
            "$name: groma_caption(detailed => $detailed) equals --task $task");
    }

    # groma_ground: the boxes of --task ground's groundings, in order, each once
    my $phrase = 'the man ironing clothes';
    my $g = cli('--image', $path, '--task', 'ground', '--phrase', $phrase, '--max-new-tokens', $tokens);
    my (@want_boxes, %seen);
    for my $gr (@{$g->{groundings}}) {
        for my $b (@{$gr->{boxes}}) { push @want_boxes, $b unless $seen{join(',', @$b)}++ }
    }
    my $ground = sql_boxes($node->safe_psql('postgres', "SELECT groma_ground($img, '$phrase')"));
    ok(close_to([map {@$_} @$ground], [map {@$_} @want_boxes], 1e-6),
        "$name: groma_ground equals --task ground's boxes (" . scalar(@want_boxes) . ")");

    # groma_describe: the same text as --task describe with the box as --refer
    my $d = cli('--image', $path, '--task', 'describe', '--refer', '10,20,100,90', '--max-new-tokens', $tokens);
    is($node->safe_psql('postgres', "SELECT md5(groma_describe($img, box '((100,90),(10,20))'))"),
        md5_hex(encode_utf8($d->{text})), "$name: groma_describe equals --task describe");

    # a proposal (clipped to the image) can be given back as the area to describe
    my $first = $want->{regions}[0]{box};
    $d = cli('--image', $path, '--task', 'describe', '--refer', join(',', @$first), '--max-new-tokens', $tokens);
    is($node->safe_psql('postgres', "SELECT md5(groma_describe($img, (groma_proposals($img))[1]))"),
        md5_hex(encode_utf8($d->{text})), "$name: the best proposal describes as --refer of the same box");
    step("$name compared with the command line");
}

# Embeddings: the region encoder's width before the up-projection, deterministic, one per region.
my $img = image_sql();
my $dims = $node->safe_psql('postgres', "SELECT string_agg(DISTINCT array_length(embedding, 1)::text, ',')
                                         FROM groma_regions($img)");
# 32 is the tiny checkpoint's flatten_linear width (region_encoder mid); the real model's is 1024
is($dims, '32', 'every embedding has the width of the region feature before the up-projection');
$node->safe_psql('postgres', "CREATE TABLE r1 AS SELECT * FROM groma_regions($img)");
$node->safe_psql('postgres', "CREATE TABLE r2 AS SELECT * FROM groma_regions($img)");
is($node->safe_psql('postgres', "SELECT count(*) FROM r1 JOIN r2 USING (idx) WHERE r1.embedding = r2.embedding
                                 AND r1.area ~= r2.area AND r1.score = r2.score"),
   $node->safe_psql('postgres', 'SELECT count(*) FROM r1'), 'a second run gives the same regions and embeddings');
is($node->safe_psql('postgres', "SELECT count(DISTINCT embedding) = count(*) AND bool_and(EXISTS (
                                   SELECT FROM unnest(embedding) v WHERE v <> 0)) FROM r1"),
   't', 'the embeddings differ between regions and are not zero');
is($node->safe_psql('postgres', "SELECT count(*) FROM r1 WHERE embedding IS NULL OR
                                   EXISTS (SELECT FROM unnest(embedding) v WHERE v = 'NaN' OR v IN ('Infinity', '-Infinity'))"),
   0, 'every embedding is finite');

# Bad input the backend cannot check alone: the server refuses it with a specific SQLSTATE.
$node->safe_psql('postgres', q{
CREATE FUNCTION sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END $$});
my $state = sub { $node->safe_psql('postgres', "SELECT sqlstate_of(\$q\$$_[0]\$q\$)") };
like($state->("SELECT groma_proposals($img, 101)"), qr/^22023 max_regions 101 is over the model's limit of 100/,
    'max_regions over the model\'s limit: 22023');
is($state->("SELECT groma_proposals($img, 100)") =~ /^ok/ ? 'ok' : 'no', 'ok', 'max_regions 100 is accepted');
like($state->("SELECT groma_caption(substring($img FROM 1 FOR length($img) * 99 / 100))"), qr/^22P03 /,
    'an image cut short past its header: 22P03');
like($state->("SELECT groma_ground($img, 'a <image> here')"), qr/^22023 .*<image>/, 'a phrase with <image>: 22023');
like($state->("SELECT groma_chat($img, 'What is <roi><refer_box></roi><refer_feat>?', ARRAY[box '((0,0),(333,251))'])"),
    qr/^ok/,
    'a refer box covering the whole image is accepted');

# ---- a database in another encoding (LATIN1): prompts, phrases and labels go to groma-server as UTF-8 and
# answers come back in the database's encoding (they went out and came back as raw bytes: the prompt was refused
# as not UTF-8 and answers were stored invalid); an answer the encoding cannot hold fails with 22P05, saying so
$node->safe_psql('postgres', "CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'");
$node->safe_psql('latin', 'CREATE EXTENSION groma');
my $syn = image_sql('synthetic_333x251.jpg');
my $water = image_sql('waterview.jpg');
# Runs sql in a database with a UTF-8 client; returns (exit code, stdout, stderr).
my $in_utf8 = sub {
    my ($db, $sql) = @_;
    my ($rc, $out, $err) = $node->psql($db, "SET client_encoding = 'UTF8'; $sql");
    return ($rc, $out, $err);
};
my $ask = "SELECT (groma_chat($syn, 'Décrivez ça')).text";
my (undef, $want_text) = $in_utf8->('postgres', $ask);
my ($rcl, $latin_text, $errl) = $in_utf8->('latin', $ask);
is($rcl, 0, 'LATIN1 database: a prompt with é and ç is sent as UTF-8') or diag($errl);
is($latin_text, $want_text, 'and the answer equals the UTF8 database\'s');
my (undef, $many_text) = $in_utf8->('latin', "SELECT (groma_chat_many(ARRAY[$syn], 'Décrivez ça'))[1].text");
is($many_text, $want_text, 'so does groma_chat_many\'s');
my ($rcg, $outg, $errg) = $in_utf8->('latin', "SELECT groma_ground($syn, 'café') IS NOT NULL");
is($outg, 't', 'a phrase with é is grounded') or diag($errg);
my ($rcd, $outd, $errd) = $in_utf8->('latin', "SELECT length(groma_draw($syn, ARRAY[box '((10,10),(50,50))'], ARRAY['é'])) > 0");
is($outd, 't', 'a label with é is drawn') or diag($errd);
my ($rcw, $outw, $errw) = $in_utf8->('latin', "\\set VERBOSITY verbose\nSELECT (groma_chat($water, 'Décrivez ça')).text");
like($errw, qr/22P05: character with byte sequence .* in encoding "UTF8" has no equivalent in encoding "LATIN1"/,
     'an answer LATIN1 cannot hold fails with 22P05');
like($errw, qr/CONTEXT:  converting groma-server's answer from UTF-8 into the database's encoding LATIN1/,
     'saying it was the answer\'s conversion');
is($node->safe_psql('latin', 'SELECT 1'), '1', 'the database keeps working');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the session keeps working');
is(status_row($node)->{restarts}, '0', 'groma-server never restarted');

# ---- the byte limits count UTF-8: a LATIN1 prompt under 65536 bytes can be over it in UTF-8 (the detail says
# both), and one with more characters than the limit is refused before it is converted
my ($rcp, $outp, $errp) = $in_utf8->('latin', "\\set VERBOSITY verbose\nSELECT groma_chat($syn, repeat('é', 40000))");
like($errp, qr/54000: prompt of 80000 bytes is over the limit of 65536 bytes/, 'a prompt of 40000 é is 80000 bytes of UTF-8');
like($errp, qr/DETAIL:  The limit counts UTF-8 bytes; in the database's encoding LATIN1 it has 40000\./,
     'the detail gives its size in LATIN1');
($rcp, $outp, $errp) = $in_utf8->('latin', "\\set VERBOSITY verbose\nSELECT groma_ground($syn, repeat('x', 70000))");
like($errp, qr/54000: phrase of at least 70000 bytes is over the limit of 65508 bytes/,
     'a phrase with more characters than the limit is refused as such');
($rcp, $outp, $errp) = $in_utf8->('latin', "SELECT groma_draw($syn, ARRAY[box '((10,10),(50,50))'], ARRAY[repeat('é', 40000)])");
like($errp, qr/label 1 of 80000 bytes is over the limit of 65536 bytes/, 'so is a label');

# ---- groma-server's messages and names reach a LATIN1 database in its encoding: a model path with è (LATIN1 has
# it) and ℓ (it has not, so it is shown as \u2113); they came as UTF-8 bytes, which LATIN1 shows as Ã¨
my $odd_path = '/nonexistent/modèle-ℓ';
$node->safe_psql('postgres', "ALTER SYSTEM SET groma.model_path = '$odd_path'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(30, sub { status_row($node)->{state} eq 'failed' }), 'a model path with è and ℓ fails to load');
my (undef, $shown_path) = $in_utf8->('latin', 'SELECT model_path FROM groma_status()');
is($shown_path, '/nonexistent/modèle-\u2113', 'groma_status().model_path in LATIN1: è as it is, ℓ escaped');
my (undef, $utf8_path) = $in_utf8->('postgres', 'SELECT model_path FROM groma_status()');
is($utf8_path, $odd_path, 'and in UTF8 as it is');
my ($rcm, $outm, $errm) = $in_utf8->('latin', "SELECT groma_chat($syn, 'Décrivez ça')");
like($errm, qr{DETAIL:  groma-server reported: .*/nonexistent/modèle-\\u2113}, 'the load error in LATIN1 names the path');
my (undef, $stderr_ok) = $in_utf8->('latin', "SELECT strpos(last_stderr, 'modèle-\\u2113') > 0 FROM groma_status()");
is($stderr_ok, 't', 'so does groma_status().last_stderr');

done_testing();
