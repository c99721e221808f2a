#!/usr/bin/env bash
# How the shipped checkpoints were made: the project's own training command, one run at a time, each with the
# whole 2-core CPU. Each run's best/ folder (lowest validation loss) is copied here. From the project root:
#   nohup bash checkpoints/train.sh > runs/train_shipped.log 2>&1 &
# The script is read to the end first (the braces), so editing it while it runs cannot change a running job.
{
set -euo pipefail
data=${DATA:-../shared/data/tiny_shakespeare}
# The comparison trio was trained before --ema-decay existed (it now defaults to 0.995) and when the default
# weight decay was 0.05 (now 0.1); --ema-decay 0 --weight-decay 0.05 here make today's code do the same.
# lstm_best was trained with today's defaults. checkpoints/README.md names the commits.
mkdir -p runs

ship() {  # ship NAME: copy a finished run's best checkpoint and its training log into checkpoints/NAME
  rm -rf "checkpoints/$1" && cp -r "runs/$1/best" "checkpoints/$1"
  cp "runs/$1/metrics.jsonl" "checkpoints/$1/metrics.jsonl"
}

# The cell comparison: the same 10-minute wall-clock budget and the same parameter budget. The LSTM is the
# default configuration (2 x 512, 3.32M parameters); the RNN and GRU get hidden sizes that match its size.
python -m charrnn.train --dataset "$data" --time-budget 10 --ema-decay 0 --weight-decay 0.05 \
  --save-dtype bfloat16 --no-progress --out runs/lstm > runs/lstm.log 2>&1
ship lstm
for cell in gru rnn_tanh; do
  name=${cell%_tanh}
  python -m charrnn.train --dataset "$data" --cell "$cell" --params 3.32M --time-budget 10 --ema-decay 0 \
    --weight-decay 0.05 --save-dtype bfloat16 --no-progress --out "runs/$name" > "runs/$name.log" 2>&1
  ship "$name"
done

# The best LSTM: larger, regularized harder (dropout 0.5, dropout 0.2 on the embeddings, weight decay 0.1, the
# default weight average) for a 1M-character corpus, trained for 58 minutes so that the run, evaluations and
# saving included, ends within the hour.
python -m charrnn.train --dataset "$data" --hidden 600 --dropout 0.5 --input-dropout 0.2 --weight-decay 0.1 \
  --batch-size 32 --time-budget 58 --save-dtype bfloat16 --no-progress --out runs/lstm_best > runs/lstm_best.log 2>&1
ship lstm_best
exit
}
