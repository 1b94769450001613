# The README's examples, run so they cannot rot.
#
# Every ```psql block of README.md is a psql session: a line starting with
# "postgres=# " begins a command ("postgres-# " continues it) and the lines
# after it, up to the next command, are the output the README shows.  The
# blocks run in order as one psql session (from the source tree, in a fresh
# database, against a cluster with the tiny model), and each command's
# output must equal the README's: the same text, with whitespace and the
# widths of psql's table rules ignored, and numbers equal to a relative
# 1e-4 (the last digits of a float may differ between CPUs).
#
# Every ```sql block is a recipe: it runs, and must succeed, in a database
# of its own holding the bundled images as photos (id, img, caption), with
# vector(1024) (the real model's width) read as vector(32) (the tiny
# model's).  A recipe that needs pgvector is skipped, saying why, where
# CREATE EXTENSION vector fails.
#
# GROMA_README_PRINT=1 prints each command's actual output, for writing the
# README.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use GromaPg;
use IPC::Run;
use Test::More;

my $node = groma_node('readme', '');
step('cluster up, model ready');

# Returns the README's ```psql and ```sql blocks in order, as [kind, text, first line].
sub readme_blocks {
    open(my $fh, '<', "$root/README.md") or die "README.md: $!";
    my (@blocks, $kind, $text, $first);
    while (my $line = <$fh>) {
        if (!defined $kind && $line =~ /^```(psql|sql)\s*$/) {
            ($kind, $text, $first) = ($1, '', $. + 1);
        } elsif (defined $kind && $line =~ /^```\s*$/) {
            push @blocks, [ $kind, $text, $first ];
            undef $kind;
        } elsif (defined $kind) {
            $text .= $line;
        }
    }
    return @blocks;
}

# Splits a psql block into commands: [command text, expected output, README line].
sub session_commands {
    my ($text, $first) = @_;
    my @cmds;
    my $n = $first;
    for my $line (split /\n/, $text) {
        if ($line =~ /^\w+=# (.*)$/) {
            push @cmds, [ $1, '', $n ];
        } elsif ($line =~ /^\w+-# (.*)$/) {
            die "README line $n: a continuation before any command" unless @cmds;
            $cmds[-1][0] .= "\n$1";
        } else {
            die "README line $n: output before any command" unless @cmds || $line =~ /^\s*$/;
            $cmds[-1][1] .= "$line\n" if @cmds;
        }
        $n++;
    }
    return @cmds;
}

# Returns a line's text with its numbers taken out, and the numbers.
sub line_shape {
    my ($line) = @_;
    my @numbers;
    $line =~ s/(?<![\w.])(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?![\w.])/push @numbers, $1; '#'/gei;
    $line =~ s/\s+//g;
    $line =~ s/-{2,}/-/g;
    return ($line, @numbers);
}

# Compares psql output with the README's; returns '' when equal, else what differs.
sub output_difference {
    my ($got, $want) = @_;
    my @g = grep { /\S/ } split /\n/, $got;
    my @w = grep { /\S/ } split /\n/, $want;
    return sprintf("%d lines, the README shows %d", scalar @g, scalar @w) if @g != @w;
    for my $i (0 .. $#w) {
        my ($gs, @gn) = line_shape($g[$i]);
        my ($ws, @wn) = line_shape($w[$i]);
        return "line " . ($i + 1) . ": got '$g[$i]'" if $gs ne $ws || @gn != @wn;
        for my $k (0 .. $#wn) {
            my ($a, $b) = ($gn[$k], $wn[$k]);
            next if abs($a - $b) <= 1e-4 * (abs($b) > 1 ? abs($b) : 1);
            return "line " . ($i + 1) . ": got '$g[$i]'";
        }
    }
    return '';
}

# Runs a psql script from stdin in the source tree; returns (exit code, stdout and stderr in order).
sub run_psql {
    my ($db, $script) = @_;
    my $out = '';
    my @cmd = ('stdbuf', '-oL', '-eL', 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db));
    IPC::Run::run(\@cmd, '<', \$script, '>&', \$out, init => sub { chdir $root or die "$root: $!" });
    return ($? >> 8, $out);
}

my @blocks = readme_blocks();
my @sessions = grep { $_->[0] eq 'psql' } @blocks;
my @recipes = grep { $_->[0] eq 'sql' } @blocks;
ok(@sessions >= 3, scalar(@sessions) . ' psql sessions in the README');
ok(@recipes >= 2, scalar(@recipes) . ' SQL recipes in the README');

# the sessions: one psql run, a marker before every command
my @cmds = map { session_commands($_->[1], $_->[2]) } @sessions;
my $script = '';
for my $k (0 .. $#cmds) {
    $script .= "\\echo '\@\@\@ $k'\n$cmds[$k][0]\n";
}
$script .= "\\echo '\@\@\@ end'\n";
unlink "$root/regions.jpg";
$node->safe_psql('postgres', 'CREATE DATABASE quickstart');
my ($rc, $out) = run_psql('quickstart', $script);
step('README sessions run (' . scalar(@cmds) . ' commands)');
is($rc, 0, 'the sessions run without an error') or diag($out);
my %got;
my $current;
for my $line (split /\n/, $out) {
    if ($line =~ /^\@\@\@ (\S+)$/) {
        $current = $1;
        $got{$current} = '';
    } elsif (defined $current) {
        $got{$current} .= "$line\n";
    }
}
ok(exists $got{end}, 'every command ran');
for my $k (0 .. $#cmds) {
    my ($cmd, $want, $line) = @{ $cmds[$k] };
    my $got = $got{$k} // '';
    (my $short = $cmd) =~ s/\s+/ /g;
    $short = substr($short, 0, 60);
    print "# README line $line: $cmd\n$got" if $ENV{GROMA_README_PRINT};
    my $diff = output_difference($got, $want);
    is($diff, '', "README line $line: $short") or diag("got:\n$got");
}

# the drawn image the quick start writes
my $jpeg = "$root/regions.jpg";
ok(-s $jpeg, 'the quick start wrote regions.jpg');
is($node->safe_psql('postgres', "SELECT (groma_image_info(pg_read_binary_file('$jpeg'))).width || 'x' ||
                                        (groma_image_info(pg_read_binary_file('$jpeg'))).height"),
   '1000x667', 'a JPEG of the image\'s size');
ok($node->safe_psql('postgres', "SELECT groma_image_validate(pg_read_binary_file('$jpeg'))") eq 't',
   'that decodes');
is($node->safe_psql('postgres', "SELECT pg_read_binary_file('$jpeg') = pg_read_binary_file('$root/docs/images/quickstart-regions.jpg')"),
   't', 'and is the image the README shows (docs/images/quickstart-regions.jpg)');
step('README sessions compared');

# the recipes, each in a database of its own
my $vector = $node->psql('postgres', 'CREATE EXTENSION vector; DROP EXTENSION vector') == 0;
for my $k (0 .. $#recipes) {
    my ($kind, $sql, $line) = @{ $recipes[$k] };
    SKIP: {
        skip("README line $line needs pgvector, which is not installed (CREATE EXTENSION vector failed)", 1)
          if $sql =~ /CREATE EXTENSION vector/ && !$vector;
        my $db = "recipe_$k";
        $node->safe_psql('postgres', "CREATE DATABASE $db");
        $node->safe_psql($db, "CREATE EXTENSION groma;
                               CREATE TABLE photos (id int PRIMARY KEY, img bytea NOT NULL, caption groma_answer)");
        my $i = 0;
        for my $name ('waterview.jpg', 'extreme_ironing.jpg', 'synthetic_333x251.jpg') {
            $i++;
            $node->safe_psql($db, "INSERT INTO photos (id, img) VALUES ($i, " . image_sql($name) . ")");
        }
        (my $run = $sql) =~ s/vector\(1024\)/vector(32)/g;
        my ($rrc, $rout) = run_psql($db, "SET groma.max_new_tokens = 4;\n$run");
        is($rrc, 0, "the recipe at README line $line runs") or diag($rout);
    }
}
step('README recipes run');
done_testing();
