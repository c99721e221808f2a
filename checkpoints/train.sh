#!/usr/bin/env bash
# How the shipped checkpoints were made: the project's own training command. The three cells trained at the
# same time on the same 2-core CPU, one torch thread each, so each got the same share of the machine for the
# same 10 minutes. Each run's best/ folder is copied here. Run from the project root:
#   nohup bash checkpoints/train.sh > runs/train_shipped.log 2>&1 &
set -euo pipefail
data=${DATA:-../shared/data/tiny_shakespeare}
mkdir -p runs

# The cell comparison: same parameter budget (3.3M), same 10-minute wall-clock budget, default settings.
for cell in rnn_tanh gru lstm; do
  name=${cell%_tanh}
  python -m charrnn.train --dataset "$data" --cell "$cell" --params 3.3M --time-budget 10 --threads 1 \
    --save-dtype bfloat16 --no-progress --out "runs/$name" > "runs/$name.log" 2>&1 &
done
wait
for name in rnn gru lstm; do
  rm -rf "checkpoints/$name" && cp -r "runs/$name/best" "checkpoints/$name"
  cp "runs/$name/metrics.jsonl" "checkpoints/$name/metrics.jsonl"
done
