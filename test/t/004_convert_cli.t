# groma-convert: the converted folder (one model.safetensors plus the json
# and tokenizer files) gives groma-server exactly the same regions and answer
# as the original pytorch_model.bin in fp32, and nearly the same in bf16.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;
use File::Temp qw(tempdir);

my $convert = $ENV{GROMA_CONVERT} // "$root/groma-convert";
my $model = "$root/test/golden/tiny-groma";
my $image = "$root/test/golden/images/waterview.jpg";
my $tmp = tempdir(CLEANUP => 1);

# Runs groma-convert; returns its exit code.
sub convert { system($convert, @_); return $? >> 8; }

is(convert($model, "$tmp/fp32"), 0, 'groma-convert to fp32 exits 0');
ok(-s "$tmp/fp32/model.safetensors", 'writes model.safetensors');
ok(!-e "$tmp/fp32/pytorch_model.bin", 'and no pytorch_model.bin');
for my $f (qw(config.json tokenizer.model tokenizer.json added_tokens.json special_tokens_map.json tokenizer_config.json)) {
    ok(-e "$tmp/fp32/$f", "copies $f");
}

my (undef, $orig) = run_server('--model', $model, '--regions', $image);
my (undef, $conv) = run_server('--model', "$tmp/fp32", '--regions', $image);
s/"timing_ms".*//s for $orig, $conv;
ok(length($orig) > 100, 'the original model selects regions');
is($conv, $orig, 'the fp32 conversion selects exactly the same regions and scores');

my @args = ('--image', $image, '--task', 'caption', '--max-new-tokens', '12');
(undef, $orig) = run_server('--model', $model, @args);
(undef, $conv) = run_server('--model', "$tmp/fp32", @args);
my ($ids_orig) = $orig =~ /"generated_ids": \[([^\]]*)\]/;
my ($ids_conv) = $conv =~ /"generated_ids": \[([^\]]*)\]/;
ok(defined $ids_orig, 'the original model answers');
is($ids_conv, $ids_orig, 'and the fp32 conversion gives the same ids');

is(convert($model, "$tmp/bf16", '--dtype', 'bf16'), 0, 'groma-convert to bf16 exits 0');
ok(-s "$tmp/bf16/model.safetensors" < 0.6 * -s "$tmp/fp32/model.safetensors", 'bf16 weights take about half the space');
my ($rc, $bf) = run_server('--model', "$tmp/bf16", '--regions', $image);
is($rc, 0, 'the bf16 conversion loads and runs');

isnt(convert("$tmp/no-such-dir", "$tmp/x"), 0, 'a missing source folder fails');
isnt(convert($model, "$tmp/y", '--dtype', 'int3'), 0, 'an unknown dtype fails');

done_testing();
