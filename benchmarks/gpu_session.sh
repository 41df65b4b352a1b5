#!/usr/bin/env bash
# Every GPU check of docs/benchmarks.md "On one H200", in two phases that fit one lent
# machine's call each (the device tool: at most 10 minutes a command, 8 files back).
#
#   python benchmarks/gpu_carry.py pack .gpu     # here, once: data, BPE files, MiniLM
#   bash benchmarks/gpu_session.sh 1             # there: profile, engine vs reference,
#                                                #   speedtest, bench --dry-run
#   bash benchmarks/gpu_session.sh 2             # there: a full-size reference row, engine
#                                                #   vs Trainer
#   bash benchmarks/gpu_session.sh 3             # there: phase 1's ratios again, after a change
#
# Each step's whole output goes to $OUT/<phase>-<step>.log; the end of each is printed.
# Python packages the machine lacks travel as wheels in .whl/ (datasets for the Trainer
# side, skops), installed into /tmp/site.
set -u
PHASE=${1:?phase 1 or 2}
OUT=${OUT:-/tmp/sentibench-gpu-out}
CARRY=${CARRY:-.gpu}
ROOT=$(pwd)
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="$ROOT/src:$ROOT/benchmarks:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_MININTERVAL=5
export SENTIBENCH_GPT2_TOKENIZER_DIR="$ROOT/$CARRY/gpt2-tokenizer"
export SENTIBENCH_SHARED_DATA="$ROOT/$CARRY"
export SENTIBENCH_CACHE_DIR=/tmp/sentibench-cache
DATA=/tmp/imdb MINILM=/tmp/minilm

step() {  # step NAME LIMIT_S COMMAND...: run, keep the whole log, print its end
  local name=$1 limit=$2; shift 2
  echo "== $name ($(date -u +%T), limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$PHASE-$name.log" 2>&1
  local rc=$?
  echo "rc=$rc, $((SECONDS - t0)) s"
  tr '\r' '\n' <"$OUT/$PHASE-$name.log" | grep -v -E "it/s|step/s|s/it|^\s*$" | tail -n "${TAIL:-30}"
}

if [ ! -f "$DATA/test.csv" ]; then
  python3 -m sentibench prepare --source "$CARRY/imdb.tar.xz" --data-dir "$DATA" \
    >"$OUT/prepare.log" 2>&1 || { cat "$OUT/prepare.log"; exit 1; }
fi

if [ "$PHASE" = 1 ]; then
  step env 30 bash -c 'nvidia-smi; python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())"'
  step profile 90 python3 benchmarks/profile_step.py --model gpt2-small --device cuda --steps 15
  step reference 150 python3 benchmarks/engine_vs_reference.py --model gpt2 --gpt2-layers 12 \
    --gpt2-width 768 --trainable-layers all --device cuda --train 4000 --eval 1000 \
    --data-dir "$DATA"
  step speedtest 230 python3 -m sentibench speedtest --device cuda --precision bf16 \
    --out /tmp/speedtest
  cat /tmp/speedtest/speedtest.md >>"$OUT/$PHASE-speedtest.log" 2>/dev/null
  step dryrun 60 python3 -m sentibench bench --preset reference --dry-run --device cuda \
    --data-dir "$DATA"
elif [ "$PHASE" = 3 ]; then  # a re-measure after a change: the ratios and MFU only
  [ -d "$MINILM" ] || python3 benchmarks/gpu_carry.py unpack-minilm "$CARRY/minilm" "$MINILM"
  step profile 90 python3 benchmarks/profile_step.py --model gpt2-small --device cuda --steps 15
  step reference 150 python3 benchmarks/engine_vs_reference.py --model gpt2 --gpt2-layers 12 \
    --gpt2-width 768 --trainable-layers all --device cuda --train 4000 --eval 1000 \
    --data-dir "$DATA"
  step speedtest 120 python3 -m sentibench speedtest --device cuda --precision bf16 \
    --models gpt2-small,deberta-v3-base --out /tmp/speedtest3
  cat /tmp/speedtest3/speedtest.md >>"$OUT/$PHASE-speedtest.log" 2>/dev/null
  step trainer 150 python3 benchmarks/engine_vs_trainer.py --model "$MINILM" --device cuda \
    --train 4000 --eval 1000 --data-dir "$DATA"
else
  [ -d "$MINILM" ] || python3 benchmarks/gpu_carry.py unpack-minilm "$CARRY/minilm" "$MINILM"
  step row 200 python3 -m sentibench bench --models gpt2-small \
    --set gpt2-small.weights=random --set gpt2-small.trainable_token_pos=last_padded \
    --data-dir "$DATA" --out /tmp/row --device cuda
  cp /tmp/row/results.md "$OUT/2-row-results.md" 2>/dev/null
  step trainer 200 python3 benchmarks/engine_vs_trainer.py --model "$MINILM" --device cuda \
    --train 4000 --eval 1000 --data-dir "$DATA"
fi
echo "phase $PHASE done at $(date -u +%T)"
