#!/usr/bin/env bash
# How the shipped checkpoints were made: the project's own training command, one model at a time on the
# same 2-core CPU, each run's best/ folder copied here. Run from the project root:
#   nohup bash checkpoints/train.sh > runs/train_shipped.log 2>&1 &
set -euo pipefail
data=${DATA:-../shared/data/tiny_shakespeare}
mkdir -p runs

# The cell comparison: same parameter budget (3.3M), same 10-minute wall-clock budget, default settings.
for cell in rnn_tanh gru lstm; do
  name=${cell%_tanh}
  python -m charrnn.train --dataset "$data" --cell "$cell" --params 3.3M --time-budget 10 \
    --save-dtype bfloat16 --no-progress --out "runs/$name"
  rm -rf "checkpoints/$name" && cp -r "runs/$name/best" "checkpoints/$name"
  cp "runs/$name/metrics.jsonl" "checkpoints/$name/metrics.jsonl"
done

# The best LSTM: larger, regularised as char-rnn did (dropout 0.5, weight decay), 55 minutes.
python -m charrnn.train --dataset "$data" --hidden 600 --dropout 0.5 --lr 2e-3 --weight-decay 0.1 \
  --time-budget 55 --save-dtype bfloat16 --no-progress --out runs/lstm_best
rm -rf checkpoints/lstm_best && cp -r runs/lstm_best/best checkpoints/lstm_best
cp runs/lstm_best/metrics.jsonl checkpoints/lstm_best/metrics.jsonl
