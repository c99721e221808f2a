"""`charrnn sample`: text from a checkpoint, streaming characters as they are made.

    charrnn sample --checkpoint checkpoints/lstm --prompt "ROMEO:" --temperature 0.8 --length 500
    charrnn sample --checkpoint user/name          (a model on the Hugging Face Hub)
    charrnn sample --checkpoint checkpoints/lstm --prompt "ROMEO:" --beam 8 --length 300   (the 8 most likely texts)
    charrnn sample --checkpoint checkpoints/lstm --num-samples 64 --length 1000     (on a CUDA GPU, if there is one)

The Python API is `stream(...)`, a generator that yields the new text of each sample after every step;
`generate(...)` wraps it for one sample. The CLI and the web UI both use it. With --beam, the text is not sampled
but searched for: `charrnn.sampling.beam.beam_search(...)` keeps the N most likely texts at every step and prints
them, best first, with their log-probabilities.

Where the steps run: on the CPU's compiled kernels, or with --device auto (the default) on a CUDA GPU when there is
one and at least CUDA_SAMPLING_ROWS samples are made at once (charrnn.device.sampling_device: a GPU step costs
about as much for one sample as for many). --device cpu or cuda says where. Beam search steps on the CPU.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time

from charrnn.checkpoint.arrays import load_arrays
from charrnn.cli.common import model_command_parser
from charrnn.config import CUDA_SAMPLING_ROWS
from charrnn.errors import check, check_text, cli_errors
from charrnn.hub.resolve import resolve
from charrnn.sampling import warm
from charrnn.sampling.beam import LENGTH_PENALTY, NO_REPEAT_NGRAM, beam_search
from charrnn.sampling.generate import SamplingSettings, encode_prompt, stream
from charrnn.sampling.stepper import Stepper

MAX_BEAM = 10_000  # as many beams as --num-samples allows samples


@cli_errors
def main(argv=None) -> dict:
    parser = model_command_parser("charrnn sample", __doc__)
    parser.add_argument("--prompt", default="", help="text to start from (default: a newline)")
    parser.add_argument("--length", type=int, default=500, help="tokens to generate (default: 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; <1 safer, >1 wilder (default: 0.8)")
    parser.add_argument("--top-k", type=int, default=0, help="sample from the k most likely only (default: 0 = all)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1] (default: 1 = all)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed: the same seed gives the same text; -1 or none picks one (printed)")
    parser.add_argument("--num-samples", type=int, default=1, help="independent samples, made as one batch")
    parser.add_argument("--stop", default=None, help="stop a sample once its text ends with this string")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help=f"where the sampling steps run: auto = a CUDA GPU for {CUDA_SAMPLING_ROWS} or more "
                             f"--num-samples when there is one, else the CPU (default: auto)")
    parser.add_argument("--beam", type=int, default=0, metavar="N",
                        help="beam search: print the N most likely continuations instead of samples (temperature, "
                             "top-k, top-p and seed do not apply); 0 or 1 = sample (default: 0)")
    parser.add_argument("--length-penalty", type=float, default=LENGTH_PENALTY, metavar="ALPHA",
                        help="beam search: rank beams by log-probability / ((5 + length) / 6) ** ALPHA (GNMT); it "
                             f"matters only when --stop ends beams early; 0 = total log-probability "
                             f"(default: {LENGTH_PENALTY})")
    parser.add_argument("--no-repeat-ngram", type=int, default=NO_REPEAT_NGRAM, metavar="K",
                        help="beam search: no beam may repeat a K-token sequence already in its text, prompt "
                             f"included, which stops beams that loop; 0 = off (default: {NO_REPEAT_NGRAM})")
    args = parser.parse_args(argv)
    settings = SamplingSettings(args.temperature, args.top_k, args.top_p)
    check(args.length >= 0, f"--length must be >= 0, got {args.length}")
    check(1 <= args.num_samples <= 10_000, f"--num-samples must be in [1, 10000], got {args.num_samples}")
    check(args.seed is None or args.seed >= -1, f"--seed must be >= 0, or -1 for a random one; got {args.seed}")
    check(0 <= args.beam <= MAX_BEAM,
          f"--beam must be a beam width in [2, {MAX_BEAM:,}], or 0 or 1 to sample; got {args.beam}")
    check(args.beam <= 1 or args.num_samples == 1,
          "--beam prints its N beams itself: leave out --num-samples (it is for sampling)")
    check(args.no_repeat_ngram >= 0, f"--no-repeat-ngram must be >= 0 (0 = off), got {args.no_repeat_ngram}")
    check_text(args.prompt, "--prompt")
    check_text(args.stop or "", "--stop")
    seed = secrets.randbelow(2**31) if args.seed in (None, -1) else args.seed  # printed, so a text can be made again
    folder = resolve(args.checkpoint, args.revision)
    device = _device(args)
    model, tokenizer, stepper = _sampler(folder, device, args.beam > 1)
    _, unknown = encode_prompt(tokenizer, args.prompt)
    if unknown:
        print(f"note: the model has never seen {''.join(unknown)!r}; those prompt characters are skipped",
              file=sys.stderr)
    if args.beam > 1:
        return _print_beams(model, tokenizer, args)
    out = sys.stdout
    start = time.perf_counter()
    texts = [""] * args.num_samples
    if args.num_samples == 1:
        out.write(args.prompt)
    for pieces in stream(model, tokenizer, args.prompt, args.length, settings, seed,
                         args.num_samples, args.stop, stepper):
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
              "seed": seed, "device": device, "unknown_prompt_chars": unknown}
    print(json.dumps(result))
    return result


def _device(args) -> str:
    """Where the steps run (charrnn.device.sampling_device), told without torch where the answer is the CPU anyway:
    a run without torch is the point of the CPU's path (see _sampler)."""
    if args.beam > 1 or args.device == "cpu" or (args.device == "auto" and args.num_samples < CUDA_SAMPLING_ROWS):
        return "cpu"
    from charrnn.device import sampling_device

    return sampling_device(args.num_samples, args.device).type


def _sampler(folder, device: str, beam: bool):
    """(model, tokenizer, stepper) for this run. Once the kernels are compiled, sampling on the CPU needs no torch:
    the Stepper is built from the checkpoint's arrays and the model is None (a prompt is stepped, not read by
    torch; torch's import alone takes longer than a short run's sampling). A first run on this machine samples with
    torch and starts compiling the kernels for the runs after it. On a GPU the model steps there (TorchStepper),
    drawing with the compiled draw once it is cached; beam search runs on the model, on the CPU."""
    cached = not beam and warm.kernels_cached()
    if cached and device == "cpu":
        arrays = load_arrays(folder)
        return None, arrays.tokenizer, Stepper.from_arrays(arrays.model_config, arrays.arrays,
                                                           threads=os.cpu_count() or 1)
    from charrnn.checkpoint.saving import load_checkpoint
    from charrnn.sampling.torch_stepper import TorchStepper

    if beam:
        checkpoint = load_checkpoint(folder)
        return checkpoint.model, checkpoint.tokenizer, None
    checkpoint = load_checkpoint(folder, device)
    if not cached:  # a first run here: torch now, the compiled kernels for the runs after it
        warm.compile_in_background()
        print("note: the sampling kernels are being compiled for this machine in the background (once); this run "
              "samples with torch (the same seed may differ in rare characters from later runs)", file=sys.stderr)
    return checkpoint.model, checkpoint.tokenizer, TorchStepper(checkpoint.model, draw_compiled=cached)


def _print_beams(model, tokenizer, args) -> dict:
    """Every beam, best first, under a line with its log-probability; then the JSON line."""
    start = time.perf_counter()
    beams = beam_search(model, tokenizer, args.prompt, args.length, args.beam,
                        args.length_penalty, args.no_repeat_ngram, args.stop)
    seconds = time.perf_counter() - start
    for i, beam in enumerate(beams):
        print(f"--- beam {i + 1}: log-probability {beam.log_prob:.2f} ({beam.bits_per_char:.3f} bits/char) ---\n"
              f"{args.prompt}{beam.text}")
    chars = len(beams[0].text) if beams else 0
    result = {"chars": chars, "seconds": round(seconds, 3), "chars_per_s": round(chars / max(seconds, 1e-9)),
              "beam": args.beam, "log_probs": [round(b.log_prob, 4) for b in beams],
              "scores": [round(b.score, 4) for b in beams]}
    print(json.dumps(result))
    return result
