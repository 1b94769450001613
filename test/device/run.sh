#!/usr/bin/env bash
# test/device/run.sh - every GPU check, on a machine with a GPU but without
# the Debian packages (the `device` machine).  Uses the self-contained bundle
# that `make device-bundle` puts in carry/ (binaries + the .so files they
# need), runs the GPU tests and the full-size benchmark, and prints a
# summary line.
#
#   here:        make device-bundle
#   on the GPU:  bash test/device/run.sh        (carry/ travels with the tree)
set -u
cd "$(dirname "$0")/../.."
BUNDLE=${GROMA_DEVICE_BUNDLE:-carry}
if [ ! -x "$BUNDLE/bin/test_preprocess_cuda" ]; then
    echo "no bundle in $BUNDLE/: run 'make device-bundle' first"
    echo "0 passed, 1 failed"
    exit 1
fi
# The bundled libraries travel xz-compressed: unpack them outside the tree (python3's lzma
# where xz is absent), so the carried folder stays small.
LIBDIR=${TMPDIR:-/tmp}/groma-bundle-lib
mkdir -p "$LIBDIR"
for z in "$BUNDLE"/lib/*.xz; do
    [ -e "$z" ] || continue
    so="$LIBDIR/$(basename "${z%.xz}")"
    if command -v xz >/dev/null; then xz -dc "$z" > "$so"
    else python3 -c 'import lzma, sys; open(sys.argv[2], "wb").write(lzma.open(sys.argv[1]).read())' "$z" "$so"; fi
done
export LD_LIBRARY_PATH="$LIBDIR:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
# cuBLAS from the machine's CUDA or from PyTorch's wheels, whichever exists.
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null); do
    [ -d "$d" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
"$BUNDLE/bin/groma-server" --device-info
PASSED=0; FAILED=0
: > /tmp/groma-gpu-all.log
# A device session has about 15 minutes, start-up included: the steps run in the order the open
# issue needs them (parity, then the figures against PyTorch, then the long runs), and a step that
# would not finish inside GROMA_DEVICE_BUDGET_S seconds of this script is skipped, saying so.
BUDGET=${GROMA_DEVICE_BUDGET_S:-540}
# Succeeds when a step of about $1 seconds fits in what is left of the budget; else says it is skipped.
fits() {
    if [ $((SECONDS + $1)) -le "$BUDGET" ]; then return 0; fi
    echo "# skipped $2: about $1 s needed, $((BUDGET - SECONDS)) s of GROMA_DEVICE_BUDGET_S=$BUDGET left" |
        tee -a /tmp/groma-gpu-all.log
    return 1
}
for t in "$BUNDLE"/bin/test_*; do
    start=$SECONDS
    "$t" test/golden/images/*.jpg test/fixtures/variant_*.jpg | tee /tmp/groma-gpu.log
    echo "# $(basename "$t") took $((SECONDS - start)) s" | tee -a /tmp/groma-gpu-all.log
    cat /tmp/groma-gpu.log >> /tmp/groma-gpu-all.log
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' /tmp/groma-gpu.log | tail -1)
    if [ -z "$line" ]; then FAILED=$((FAILED + 1)); echo "not ok - $t printed no summary"; continue; fi
    PASSED=$((PASSED + ${line%% passed*}))
    f=${line#*passed, }; FAILED=$((FAILED + ${f%% failed*}))
done
# groma-server --device cuda writes the same file as --device cpu.
for img in test/golden/images/*.jpg; do
    "$BUNDLE/bin/groma-server" --decode "$img" --out /tmp/cpu.st --device cpu &&
    "$BUNDLE/bin/groma-server" --decode "$img" --out /tmp/cuda.st --device cuda &&
    cmp -s <(tail -c 3010560 /tmp/cpu.st) <(tail -c 3010560 /tmp/cuda.st)
    if [ $? = 0 ]; then PASSED=$((PASSED + 1)); echo "ok - --device cuda equals --device cpu on $img";
    else FAILED=$((FAILED + 1)); echo "not ok - --device cuda equals --device cpu on $img"; fi
done
# groma-server --regions --device cuda (f32 weights) keeps the same boxes as --device cpu, within 0.011 of the
# printed two decimals (a value on a rounding boundary may print one step apart).
boxes() { grep -o '"box": \[[^]]*\]' "$1" | tr -d '"box:[] ' | tr ',' '\n'; }
for img in test/golden/images/*.jpg; do
    "$BUNDLE/bin/groma-server" --model test/golden/tiny-groma --regions "$img" --device cpu > /tmp/cpu.json &&
    "$BUNDLE/bin/groma-server" --model test/golden/tiny-groma --regions "$img" --device cuda --weights f32 > /tmp/cuda.json &&
    [ "$(boxes /tmp/cpu.json | wc -l)" -gt 0 ] && [ "$(boxes /tmp/cpu.json | wc -l)" = "$(boxes /tmp/cuda.json | wc -l)" ] &&
    paste <(boxes /tmp/cpu.json) <(boxes /tmp/cuda.json) | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 0.011) bad = 1 } END { exit bad }'
    if [ $? = 0 ]; then PASSED=$((PASSED + 1)); echo "ok - --regions --device cuda equals --device cpu on $img";
    else FAILED=$((FAILED + 1)); echo "not ok - --regions --device cuda equals --device cpu on $img"; fi
done
# The full-size benchmark: groma-7b-finetune's shapes with random bf16 matrices on the GPU (the default).
if fits 150 "the full-size benchmark"; then
    echo "=== groma-server --bench --random-weights --config real --device cuda"
    timeout 240 "$BUNDLE/bin/groma-server" --bench --random-weights --config real --device cuda | tee /tmp/groma-bench.json
    if grep -q '"decode_tokens_per_s"' /tmp/groma-bench.json; then PASSED=$((PASSED + 1)); echo "ok - the full-size benchmark printed every figure";
    else FAILED=$((FAILED + 1)); echo "not ok - the full-size benchmark printed every figure"; fi
fi
# Weight-only int8: the same benchmark with the language model's matrices in i8 (the rest bf16), so the
# decode and prefill figures read against the bf16 ones above.
if fits 150 "the int8 benchmark"; then
    echo "=== groma-server --bench --random-weights --config real --device cuda --weights int8"
    timeout 240 "$BUNDLE/bin/groma-server" --bench --random-weights --config real --device cuda --weights int8 |
        sed 's/"figure": "/"figure": "int8 /' | tee /tmp/groma-bench-int8.json
    if grep -q '"decode_tokens_per_s"\|"int8 decode_tokens_per_s"' /tmp/groma-bench-int8.json; then
        PASSED=$((PASSED + 1)); echo "ok - the full-size benchmark with int8 weights printed every figure"
    else FAILED=$((FAILED + 1)); echo "not ok - the full-size benchmark with int8 weights printed every figure"; fi
fi
# The PyTorch route on the same GPU in the same run (make device-bundle carries torch_baseline.py when
# ../shared/bench has it), so every figure reads as a ratio.
if fits 200 "torch_baseline.py"; then
    if [ -f "$BUNDLE/torch_baseline.py" ]; then
        echo "=== torch_baseline.py (PyTorch, fp16, the same shapes with random weights)"
        start=$SECONDS
        timeout 300 python3 "$BUNDLE/torch_baseline.py" | tee /tmp/groma-torch.jsonl
        echo "# torch_baseline.py took $((SECONDS - start)) s" | tee -a /tmp/groma-gpu-all.log
    else
        echo "# torch_baseline.py skipped: not in $BUNDLE/ (run make device-bundle where ../shared/bench exists)" |
            tee /tmp/groma-torch.jsonl
    fi
fi
# Where the time goes: the same benchmark with per-op GPU times (CUDA events around each op; its
# wall-clock figures read slightly slow), one {"profile": stage, ...} line per stage.
if fits 150 "the profiled benchmark"; then
    echo "=== GROMA_CUDA_PROFILE=1 groma-server --bench --random-weights --config real --device cuda"
    GROMA_CUDA_PROFILE=1 timeout 240 "$BUNDLE/bin/groma-server" --bench --random-weights --config real --device cuda |
        grep '"profile"' | tee /tmp/groma-profile.json
fi
# Batched against alone on the GPU: f32 weights must agree on every answer; with bf16 (the default) and the
# real size (random weights) the report says how many answers a batch's rounding changes.
if fits 300 "batch_parity.sh"; then
    if command -v perl >/dev/null && perl -MIO::Socket::UNIX -MIO::Select -e 1 2>/dev/null; then
        echo "=== batch_parity.sh: answers at --max-batch 16 against --max-batch 1"
        start=$SECONDS
        : > /tmp/groma-parity.txt
        for spec in f32: bf16: bf16:real; do
            GROMA_SERVER="$BUNDLE/bin/groma-server" DEVICE=cuda WEIGHTS=${spec%%:*} RANDOM_CONFIG=${spec#*:} \
                timeout 240 bash test/bench/batch_parity.sh | tee "/tmp/groma-parity-$spec.txt"
            cat "/tmp/groma-parity-$spec.txt" >> /tmp/groma-parity.txt
        done
        echo "# batch_parity.sh took $((SECONDS - start)) s" | tee -a /tmp/groma-gpu-all.log
        if grep -q '^batch_parity: 0 of 24 answers differ' /tmp/groma-parity-f32:.txt; then
            PASSED=$((PASSED + 1)); echo "ok - with f32 weights every batched answer equals its answer alone on the GPU"
        else FAILED=$((FAILED + 1)); echo "not ok - with f32 weights every batched answer equals its answer alone on the GPU"; fi
    fi
fi
# Batching across sessions: captions/s of groma-server --serve at the real size (random weights, the
# tiny model's tokenizer) under a closed loop of 1, 8, 32 and 64 clients, --max-batch 1 against 64.
if fits 420 "bench_batch.sh"; then
    if command -v perl >/dev/null && perl -MIO::Socket::UNIX -MIO::Select -e 1 2>/dev/null; then
        echo "=== bench_batch.sh: closed loop through the scheduler, real size, random weights"
        start=$SECONDS
        GROMA_SERVER="$BUNDLE/bin/groma-server" DEVICE=cuda RANDOM_CONFIG=real KV_CACHE_MB=${GROMA_DEVICE_KV_MB:-40960} \
            timeout 400 bash test/bench/bench_batch.sh "${GROMA_DEVICE_LOOP_SECONDS:-5}" | tee /tmp/groma-batch.txt
        echo "# bench_batch.sh took $((SECONDS - start)) s" | tee -a /tmp/groma-gpu-all.log
        if [ "$(grep -cE '^(1|64) (1|8|32|64) [0-9.]+ [0-9]+$' /tmp/groma-batch.txt)" = 8 ]; then
            PASSED=$((PASSED + 1)); echo "ok - the closed loop printed captions/s for every batch and client count"
        else FAILED=$((FAILED + 1)); echo "not ok - the closed loop printed captions/s for every batch and client count"; fi
    else
        echo "# bench_batch.sh skipped: perl with IO::Socket::UNIX is not installed here" | tee /tmp/groma-batch.txt
    fi
fi
# Shared-memory races between warps are what the emulator cannot see: racecheck the op tests
# (GROMA_OPS_SANITIZER_RUN: no timings, fewer and smaller attention cases) where compute-sanitizer exists.
if fits 220 "racecheck"; then
    SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
    if [ -n "$SANITIZER" ] && [ "${GROMA_DEVICE_SANITIZE:-1}" = 1 ]; then
        echo "=== compute-sanitizer --tool racecheck test_ops_cuda"
        start=$SECONDS
        GROMA_OPS_SANITIZER_RUN=1 timeout 200 "$SANITIZER" --tool racecheck --racecheck-report hazard --print-limit 20 \
            "$BUNDLE/bin/test_ops_cuda" > /tmp/groma-race.log 2>&1
        rc=$?
        tail -25 /tmp/groma-race.log
        # the first hazards in full (where, which kernel), and the whole log where the device tool collects files
        grep -m 6 -A 12 -E '^========= (Error|Warning)' /tmp/groma-race.log
        [ -n "${OUT:-}" ] && [ -d "$OUT" ] && cp /tmp/groma-race.log "$OUT/racecheck.log"
        echo "# racecheck took $((SECONDS - start)) s (exit $rc)"
        if [ $rc = 0 ] && grep -q 'RACECHECK SUMMARY: 0 hazards' /tmp/groma-race.log; then
            PASSED=$((PASSED + 1)); echo "ok - racecheck finds no shared-memory hazard in the op tests"
        else FAILED=$((FAILED + 1)); echo "not ok - racecheck finds no shared-memory hazard in the op tests"; fi
    else
        echo "# racecheck skipped: compute-sanitizer not found (or GROMA_DEVICE_SANITIZE=0)"
    fi
fi
echo "=== summary"
grep -h '^# figure' /tmp/groma-gpu-all.log
grep -h '"figure"' /tmp/groma-bench.json 2>/dev/null
grep -h '"figure": "int8 \(prefill\|decode\|build\|caption\)' /tmp/groma-bench-int8.json 2>/dev/null
cat /tmp/groma-profile.json 2>/dev/null
cat /tmp/groma-batch.txt 2>/dev/null
grep -h '^# batch_parity\|^batch_parity' /tmp/groma-parity.txt 2>/dev/null
grep -h '"figure"' /tmp/groma-torch.jsonl 2>/dev/null
grep -h ' took \|^# skipped' /tmp/groma-gpu-all.log
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
