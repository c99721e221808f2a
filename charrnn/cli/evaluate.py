"""`charrnn evaluate`: bits per character of a model on a split, a dataset or a file.

    charrnn evaluate --checkpoint checkpoints/lstm --dataset tiny_shakespeare
    charrnn evaluate --checkpoint user/name --dataset my_novel.txt
    charrnn evaluate --checkpoint runs/big/best --dataset big.txt --eval-tokens 1000000   (a sample, as training's)

A dataset or file is encoded into the cache of encoded text, as for training (the same text again starts at once),
and scored from there a chunk at a time: memory does not grow with the text.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from charrnn.data import load_corpus, resolve_source
from charrnn.device import autocast_dtype, pick_device
from charrnn.errors import ArgumentParser, check, check_text, cli_errors
from charrnn.evaluate import evaluate_ids, evaluate_text, scored_part, unknown_chars
from charrnn.hub.resolve import load


@cli_errors
def main(argv=None) -> dict:
    parser = ArgumentParser(prog="charrnn evaluate", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder or Hub id (user/name)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a Hub id (default: main)")
    parser.add_argument("--dataset", nargs="+", help="Hub id, preset, dataset folder, data or text file(s)")
    parser.add_argument("--dataset-config", default=None, help="dataset configuration name")
    parser.add_argument("--split", default=None,
                        help="score this whole split, in datasets syntax (default: the part training held out: "
                             "the dataset's validation(+test) split, else the last --val-fraction of the text)")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="tail held out when there is no validation split (default: the checkpoint's, else 0.1)")
    parser.add_argument("--all", action="store_true",
                        help="score all of the text (the files, or the whole --split, default train), "
                             "the part the model trained on included")
    parser.add_argument("--text-column", default=None, help="column holding the text")
    parser.add_argument("--text", default=None, help="score this text instead of a dataset")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--precision", default="fp32", help="fp32 (default, exact), bf16 or auto")
    parser.add_argument("--eval-tokens", type=int, default=0, metavar="N",
                        help="score at most N tokens: a sample of windows spread evenly over the text, as training's "
                             "evaluations score (charrnn train --eval-tokens) (default: 0, all of it)")
    args = parser.parse_args(argv)
    check((args.dataset is None) != (args.text is None), "give one of --dataset (a split, dataset or text file) "
                                                         "and --text")
    check(args.val_fraction is None or 0 < args.val_fraction < 1,
          f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    check(args.eval_tokens >= 0, f"--eval-tokens must be >= 0 (0 scores everything), got {args.eval_tokens}")
    check_text(args.text or "", "--text")
    device = pick_device(args.device)
    amp_dtype = autocast_dtype(args.precision, device)
    checkpoint = load(args.checkpoint, args.revision, device)
    scoring = dict(device=device, amp_dtype=amp_dtype, max_tokens=args.eval_tokens, progress=True)
    if args.text is not None:
        what, part = "--text", "all"
        start = time.perf_counter()
        result = evaluate_text(checkpoint.model, checkpoint.tokenizer, args.text, **scoring)
    else:
        source = resolve_source(args.dataset, args.dataset_config, args.split or "train", "auto", args.text_column)
        check(args.split is None or not source.is_text_files,
              "--split applies to datasets; text files are scored on the tail training held out, or whole with --all")
        what, whole = source.name, bool(args.all or args.split)
        val_fraction = args.val_fraction or checkpoint.meta.get("training", {}).get("val_fraction", 0.1)
        source, val_fraction, name = scored_part(source, whole, val_fraction)
        part = f"all of {name}" if whole else f"{name} (held out in training; --all scores everything)"
        corpus = load_corpus(source, val_fraction=val_fraction, tokenizer=checkpoint.tokenizer, progress=True)
        start = time.perf_counter()
        result = evaluate_ids(checkpoint.model, corpus.val, corpus.val_chars, **scoring)
        result["unknown_chars"] = unknown_chars(source, corpus)
    if result["unknown_chars"]:
        print(f"note: {len(result['unknown_chars'])} characters unknown to the model were scored as <unk>: "
              f"{''.join(result['unknown_chars'][:40])!r}", file=sys.stderr)
    result.update(checkpoint=str(checkpoint.path), data=what, part=part, seconds=round(time.perf_counter() - start, 3))
    print(json.dumps(result))
    return result
