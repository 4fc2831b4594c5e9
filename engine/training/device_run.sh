#!/usr/bin/env bash
# One prepared GPU training run that continues the shipped model, for a session that is lent a GPU machine.
# Run there from the repository root, carrying .cache/corpus/data/{corpus.jsonl.gz,manifest.json} (23 MB; the interpreter
# there has another standard library, so the corpus travels instead of being collected again) and, if that
# machine lacks tokenizers or safetensors, their wheels. The new model comes back in $OUT/model (bf16 weights,
# about 14 MB: under the 16 MB per-file limit) only if it validates better than engine/default_model.
#
#   MINUTES=7 bash engine/training/device_run.sh
# (DEVICE=cpu BATCH=8 MINUTES=0.5 OUT=.cache/device-out runs the same steps here, as a check of the script.)
# then, here: copy the returned model/ over engine/default_model/ and commit it.
set -euo pipefail
MINUTES=${MINUTES:-7}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-128}
DATA=${DATA:-.cache/device-data}
OUT=${OUT:?set OUT to the folder that comes back}

mkdir -p "$DATA" "$OUT/model"
cp .cache/corpus/data/corpus.jsonl.gz .cache/corpus/data/manifest.json "$DATA/"
# same tokenizer as the shipped model, so token ids (and validation losses) stay comparable
python -m engine.training prepare --data "$DATA" --tokenize-only --tokenizer engine/default_model/tokenizer.json
# the bar to beat: the shipped model's validation loss
cp engine/default_model/training.json "$OUT/model/training.json"
PYTHONUNBUFFERED=1 python -m engine.training train --name gpu --data "$DATA" --init engine/default_model \
  --device "$DEVICE" --minutes "$MINUTES" --batch-size "$BATCH" --eval-every 100 --ckpt-minutes 60 --ship "$OUT/model" \
  2>&1 | tee "$OUT/train.log"
cp runs/gpu/log.jsonl "$OUT/log.jsonl"
