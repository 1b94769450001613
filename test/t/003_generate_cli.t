# groma-server --model DIR --image IMG (--prompt | --task) on the bundled tiny
# model: the greedy ids equal the golden run's, the answer is JSON, and bad
# queries or options give clear errors.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use GromaCli;

my $model = "$root/test/golden/tiny-groma";
my $image = "$root/test/golden/images/extreme_ironing.jpg";

my $golden = "$root/test/golden/compact/case_extreme_ironing.safetensors";
my @want = golden_ids($golden, 'prompt.rec.generated_ids');
my ($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--task', 'ground',
    '--phrase', 'the man ironing clothes', '--max-new-tokens', '12');
is($rc, 0, '--task ground exits 0') or diag($err);
my ($ids) = $out =~ /"generated_ids": \[([^\]]*)\]/;
my @got = split(/\s*,\s*/, $ids // '');
s/\s+//g for @got;
is_deeply(\@got, \@want, 'greedy ids equal the golden REC run (12 steps)');
like($out, qr/"text": "/, 'prints the answer text');
like($out, qr/"stopped": "limit"/, 'reports why it stopped');
like($out, qr/"regions": 14/, 'and how many regions the model saw');

@want = golden_ids($golden, 'prompt.gcap.generated_ids');
($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--prompt',
    '[grounding]Please briefly summarize the content of this image.', '--max-new-tokens', '12');
($ids) = $out =~ /"generated_ids": \[([^\]]*)\]/;
@got = map { s/\s+//gr } split(/,/, $ids // '');
is_deeply(\@got, \@want, '--prompt gives the golden grounded-caption ids');

# Weight-only int8 (the language model's matrices in 8 bits) on the CPU: on the tiny model the drift is
# small enough that the grounded caption keeps the golden ids (test_int8_tiny_model_drift measures it).
($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--weights', 'int8', '--prompt',
    '[grounding]Please briefly summarize the content of this image.', '--max-new-tokens', '12');
is($rc, 0, '--weights int8 runs on the CPU') or diag($err);
($ids) = $out =~ /"generated_ids": \[([^\]]*)\]/;
@got = map { s/\s+//gr } split(/,/, $ids // '');
is_deeply(\@got, \@want, 'and gives the golden grounded-caption ids');
($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--weights', 'f16', '--task', 'caption');
is($rc, 1, '16-bit weights on the CPU are refused');
like($err, qr/f16 weights need the GPU/, 'saying why');

($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--prompt', 'What is <image>?');
is($rc, 1, 'a query with <image> is refused');
like($err, qr/must not contain <image>/, 'with a clear message');
($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--task', 'describe');
is($rc, 2, '--task describe without --refer is a usage error');
($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--task', 'poem');
is($rc, 2, 'an unknown task is a usage error');
($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--task', 'caption', '--max-new-tokens', '0');
is($rc, 2, '--max-new-tokens 0 is a usage error');
($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--task', 'describe', '--refer', '10,10,100,100',
    '--max-new-tokens', '4');
is($rc, 0, '--task describe with one --refer box works') or diag($err);

# Issue 17 item 4: a prompt past the model's context (4096 positions) is refused, naming both numbers.
($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--prompt', 'word ' x 5000);
is($rc, 1, 'a prompt longer than the context is refused');
like($err, qr/error \(limit\): prompt of \d{4,} tokens .*plus 256 new tokens exceeds the model's context of 4096/,
	'naming the prompt tokens, the new tokens and the context');
unlike($out, qr/"text"/, 'and nothing is answered');
($rc, $out, $err) = run_server('--model', $model, '--image', $image, '--task', 'caption',
	'--max-new-tokens', '4000');
is($rc, 1, 'a short prompt with more new tokens than the context leaves is refused');
like($err, qr/plus 4000 new tokens exceeds the model's context of 4096/, 'with the same message');

# A refer placeholder count that does not match the --refer boxes is refused before the model loads
# (a model folder that does not exist shows nothing was loaded first).
($rc, $out, $err) = run_server('--model', '/nonexistent', '--image', $image, '--prompt',
	'What is <roi><refer_box></roi><refer_feat>?');
is($rc, 1, 'refer placeholders without --refer boxes are refused');
like($err, qr/1 <refer_box> and 1 <refer_feat> placeholders for 0 refer boxes/, 'before the model is loaded');
($rc, $out, $err) = run_server('--model', '/nonexistent', '--image', $image, '--prompt', 'What is this?',
	'--refer', '1,1,40,40');
is($rc, 1, 'a --refer box the prompt never uses is refused');
like($err, qr/0 <refer_box> and 0 <refer_feat> placeholders for 1 refer boxes/, 'before the model is loaded');

# Invalid UTF-8 is an input error (exit 1) whether it comes through --prompt or --phrase.
($rc, $out, $err) = run_server('--model', '/nonexistent', '--image', $image, '--prompt', "caf\xe9");
is($rc, 1, 'invalid UTF-8 through --prompt exits 1');
like($err, qr/not valid UTF-8/, 'naming the problem');
($rc, $out, $err) = run_server('--model', '/nonexistent', '--image', $image, '--task', 'ground', '--phrase', "caf\xe9");
is($rc, 1, 'invalid UTF-8 through --phrase exits 1 too');
like($err, qr/not valid UTF-8/, 'with the same message');

done_testing();
