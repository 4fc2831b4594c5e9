#!/usr/bin/env bash
# The whole check for a lent GPU in at most BUDGET seconds (default 570: one device call runs at most 10
# minutes; BUDGET=720 where 12 are allowed). Everything lands in $OUT, 8 files: summary.txt, check.log,
# tests.xml, bench_device.json, bench_gemma.json, train.log, log.jsonl, model.tar.gz.
#   1. the engine tests on the device (pytest --device cuda)
#   2. bench/bench_device.py: a random-weight model at the Dream-7B shape in bf16, diffusion (1/4/8/16 tokens
#      per forward, cache on and off) against autoregressive decoding with a KV cache
#   2a. bench/bench_batch.py: the engine's batching (engine/batch.py) with the embedded model, 1 and 16
#      concurrent submitters, max_batch 16 against 1 (STEPS name: batch)
#   2b. bench/bench_gemma.py: DiffusionGemma at the 26B-A4B shape, random weights in bf16, then packed as int4
#      (engine/quantize.py): tokens/s per 256-token canvas at 16, 32 and 48 steps after a 4,096-token prompt,
#      the weights held and the runs' peak memory beside `unmask fit`'s figures (Google: under 18 GB with
#      4-bit weights), next to the published speeds (STEPS name: gemma)
#   3. engine/training/device_run.sh with the time left (the embedded model, continued; it comes back in
#      model.tar.gz only if it validates better than the shipped one)
# Each step runs under `timeout`, so a failing or hanging step leaves the others their time; STEPS picks some
# (e.g. STEPS=train for a second call).
#
# On the GPU machine (its python3 holds a CUDA torch; nothing can be fetched there), from the repository root,
# carrying .cache/corpus/data/corpus.jsonl.gz and .cache/corpus/data/manifest.json for step 3:
#   bash bench/device_check.sh
# Here, as a check of the script (tiny shape, short training, one thread):
#   DEVICE=cpu OUT=runs/device-out bash bench/device_check.sh
set -uo pipefail
DEVICE=${DEVICE:-cuda}
OUT=${OUT:?set OUT to the folder that comes back}
BUDGET=${BUDGET:-570}
STEPS=" ${STEPS:-tests bench batch gemma train} "
THREADS=${THREADS:-1}  # CPU threads with DEVICE=cpu
export DEVICE OUT
ENGINE_TESTS="tests/test_generate.py tests/test_load.py tests/test_sample.py tests/test_memory.py
  tests/test_gemma_model.py"  # the gemma parity tests skip where transformers is not installed
START=$(date +%s)
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt LOG=$OUT/check.log
: >"$SUMMARY"
: >"$LOG"

left() { echo $((BUDGET - ($(date +%s) - START))); }
note() { echo "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME SECONDS COMMAND...: run under timeout, log its output, note status and time
  local name=$1 limit=$2 t0 rc
  shift 2
  t0=$(date +%s)
  echo "=== $name (limit ${limit}s): $*" >>"$LOG"
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  note "$name: $([ $rc -eq 0 ] && echo ok || { [ $rc -eq 124 ] && echo "timed out" || echo "failed (rc $rc)"; }) in $(($(date +%s) - t0)) s"
  return $rc
}

# --- the interpreter: the machine's CUDA torch where there is one, else a venv pinned by constraints.txt
if [ "$DEVICE" != cpu ] && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  PY=$(command -v python3)
  if ls .whl/*.whl >/dev/null 2>&1; then  # missing packages carried as wheels (see device_run.sh)
    SITE=$(mktemp -d) && python3 -m pip install -q --no-index --no-deps --target "$SITE" .whl/*.whl && export PYTHONPATH="$SITE"
  fi
  # the project itself, offline and without its pins (they name the CPU wheel of torch)
  step install 120 "$PY" -m pip install --no-deps --no-build-isolation --no-index -e .
else
  export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
  step install 600 bash -c "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[test,bench]'"
  PY=$PWD/.venv/bin/python
fi
# device_run.sh calls `python`: make that this interpreter
BIN=$(mktemp -d)
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PY" >"$BIN/python"
chmod +x "$BIN/python"
export PATH="$BIN:$PATH" PYTHONUNBUFFERED=1
note "device $DEVICE; $("$PY" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")' 2>&1)"

# --- 1. engine tests on the device
if [[ $STEPS == *" tests "* ]]; then
  # shellcheck disable=SC2086
  step tests 150 "$PY" -m pytest -q -p no:cacheprovider --device "$DEVICE" --junitxml "$OUT/tests.xml" $ENGINE_TESTS
  grep -E "^(FAILED|ERROR)|[0-9]+ (passed|failed)" "$LOG" | tail -20 >>"$SUMMARY"
fi

# --- 2. throughput at the Dream-7B shape (tiny on CPU)
if [ "$DEVICE" = cpu ]; then
  SHAPE=(--shape tiny --device cpu --contexts 256 --middle 32 --threads "$THREADS")
else
  SHAPE=(--shape dream-7b --device "$DEVICE")
fi
if [[ $STEPS == *" bench "* ]]; then
  step bench 180 "$PY" -m bench.bench_device "${SHAPE[@]}" --out "$OUT/bench_device.json"
  sed -n '/^| context/,/^$/p' "$LOG" | grep '^|' >>"$SUMMARY"
fi

# --- 2a. batching several requests per forward (issue 13's target: 2x completions/s at 16 clients)
if [[ $STEPS == *" batch "* ]]; then
  step batch 90 "$PY" -m bench.bench_batch --device "$DEVICE" --clients 1 16 --seconds 10 --warmup 2 \
    --threads "$THREADS"
  grep -E '^\| (1|16) \||^16 clients' "$LOG" >>"$SUMMARY"
fi

# --- 2b. DiffusionGemma at the 26B-A4B shape, bf16 then int4 (a scaled-down shape on CPU); bf16 first, so that
# an int4 failure leaves its figures
if [ "$DEVICE" = cpu ]; then
  GEMMA=(--shape small --device cpu --dtype float32 --context 128 --canvas 64 --steps 4 8 --no-generate
    --repeats 1 --threads "$THREADS")
else
  GEMMA=(--shape 26b-a4b --device "$DEVICE" --context 4096 --repeats 2)
fi
if [[ $STEPS == *" gemma "* ]]; then
  step gemma 300 "$PY" -m bench.bench_gemma "${GEMMA[@]}" --quantize none int4 --out "$OUT/bench_gemma.json"
  grep -E '^(diffusion-gemma|published)' "$LOG" >>"$SUMMARY"
  sed -n '/^| loop/,/^$/p' "$LOG" | grep '^|' >>"$SUMMARY"
fi

# --- 3. the embedded model's prepared training run, with what is left (prepare, evaluation and shipping take
# up to RESERVE seconds beside the training minutes)
RESERVE=${RESERVE:-120}
if [[ $STEPS != *" train "* ]]; then
  :
elif [ ! -f .cache/corpus/data/corpus.jsonl.gz ]; then
  note "train: skipped (carry .cache/corpus/data/corpus.jsonl.gz and manifest.json)"
elif [ "$(left)" -lt $((RESERVE + 60)) ]; then
  note "train: skipped ($(left) s left)"
else
  if [ "$DEVICE" = cpu ]; then
    export BATCH=${BATCH:-8} MINUTES=${MINUTES:-0.5}
  else
    export MINUTES=${MINUTES:-$(awk "BEGIN { printf \"%.1f\", ($(left) - $RESERVE) / 60 }")}
  fi
  note "train: $MINUTES minutes on $DEVICE"
  step train $(($(left) - 5)) bash engine/training/device_run.sh
  grep -E "^(shipped|not shipped)|val" "$OUT/train.log" 2>/dev/null | tail -3 >>"$SUMMARY"
fi
# the returned model is one file (what comes back is limited to 8 files)
[ -d "$OUT/model" ] && tar czf "$OUT/model.tar.gz" -C "$OUT" model && rm -r "$OUT/model"
note "total $(($(date +%s) - START)) s of $BUDGET"
