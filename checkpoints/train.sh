#!/usr/bin/env bash
# How the shipped checkpoints were made: the project's own training command, one model at a time on the
# same 2-core CPU with one torch thread each (the other core stayed free for other work), each run's best/
# folder copied here. Run from the project root:
#   nohup bash checkpoints/train.sh > runs/train_shipped.log 2>&1 &
set -euo pipefail
data=${DATA:-../shared/data/tiny_shakespeare}
mkdir -p runs

ship() {  # ship RUN NAME: copy a run's best checkpoint and its metrics log into checkpoints/NAME
  rm -rf "checkpoints/$2" && cp -r "runs/$1/best" "checkpoints/$2"
  cp "runs/$1/metrics.jsonl" "checkpoints/$2/metrics.jsonl"
}

# The cell comparison: same parameter budget (3.3M), same 10-minute wall-clock budget, default settings.
for cell in rnn_tanh gru lstm; do
  name=${cell%_tanh}
  python -m charrnn.train --dataset "$data" --cell "$cell" --params 3.3M --time-budget 10 --threads 1 \
    --save-dtype bfloat16 --no-progress --out "runs/$name"
  ship "$name" "$name"
done

# A longer-trained LSTM, regularised more (dropout, weight decay), 40 minutes.
python -m charrnn.train --dataset "$data" --dropout 0.35 --weight-decay 0.1 --time-budget 40 --threads 1 \
  --save-dtype bfloat16 --no-progress --out runs/lstm_best
ship lstm_best lstm_best
