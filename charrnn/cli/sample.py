"""`charrnn sample`: text from a checkpoint, streaming characters as they are made.

    charrnn sample --checkpoint checkpoints/lstm --prompt "ROMEO:" --temperature 0.8 --length 500
    charrnn sample --checkpoint user/name          (a model on the Hugging Face Hub)

The Python API is `stream(...)`, a generator that yields the new text of each sample after every step;
`generate(...)` wraps it for one sample. The CLI and the web UI both use it.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time

from charrnn.errors import ArgumentParser, check, check_text, cli_errors
from charrnn.hub.resolve import load
from charrnn.sampling.generate import SamplingSettings, encode_prompt, stream


@cli_errors
def main(argv=None) -> dict:
    parser = ArgumentParser(prog="charrnn sample", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint folder (e.g. checkpoints/lstm) or Hub id (user/name)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a Hub id (default: main)")
    parser.add_argument("--prompt", default="", help="text to start from (default: a newline)")
    parser.add_argument("--length", type=int, default=500, help="tokens to generate (default: 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; <1 safer, >1 wilder (default: 0.8)")
    parser.add_argument("--top-k", type=int, default=0, help="sample from the k most likely only (default: 0 = all)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1] (default: 1 = all)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed: the same seed gives the same text; -1 or none picks one (printed)")
    parser.add_argument("--num-samples", type=int, default=1, help="independent samples, made as one batch")
    parser.add_argument("--stop", default=None, help="stop a sample once its text ends with this string")
    args = parser.parse_args(argv)
    settings = SamplingSettings(args.temperature, args.top_k, args.top_p)
    check(args.length >= 0, f"--length must be >= 0, got {args.length}")
    check(1 <= args.num_samples <= 10_000, f"--num-samples must be in [1, 10000], got {args.num_samples}")
    check(args.seed is None or args.seed >= -1, f"--seed must be >= 0, or -1 for a random one; got {args.seed}")
    check_text(args.prompt, "--prompt")
    check_text(args.stop or "", "--stop")
    seed = secrets.randbelow(2**31) if args.seed in (None, -1) else args.seed  # printed, so a text can be made again
    checkpoint = load(args.checkpoint, args.revision)
    _, unknown = encode_prompt(checkpoint.tokenizer, args.prompt)
    if unknown:
        print(f"note: the model has never seen {''.join(unknown)!r}; those prompt characters are skipped",
              file=sys.stderr)
    out = sys.stdout
    start = time.perf_counter()
    texts = [""] * args.num_samples
    if args.num_samples == 1:
        out.write(args.prompt)
    for pieces in stream(checkpoint.model, checkpoint.tokenizer, args.prompt, args.length, settings, seed,
                         args.num_samples, args.stop):
        if args.num_samples == 1:
            out.write(pieces[0])
            out.flush()
        for i, piece in enumerate(pieces):
            texts[i] += piece
    seconds = time.perf_counter() - start
    if args.num_samples > 1:
        for i, text in enumerate(texts):
            out.write(f"--- sample {i + 1} ---\n{args.prompt}{text}\n")
    else:
        out.write("\n")
    chars = sum(len(t) for t in texts)
    result = {"chars": chars, "seconds": round(seconds, 3), "chars_per_s": round(chars / max(seconds, 1e-9)),
              "seed": seed, "unknown_prompt_chars": unknown}
    print(json.dumps(result))
    return result
