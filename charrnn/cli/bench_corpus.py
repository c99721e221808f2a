"""Corpus benchmark: encode a generated multi-GB text file through load_corpus and print the figures.

    charrnn bench corpus             # 2 GB (about 5 minutes on 2 cores; needs ~5 GB of free disk)
    charrnn bench corpus --gb 0.2    # a quick look

It writes English-like text into a temporary folder: words drawn with a fixed seed from a built-in list, with
speakers, line breaks, and now and then a non-ASCII word (an accent, a curly quote), as in most real corpora,
so every chunk takes the general encoding path (`--ascii` leaves them out, for the faster ASCII path). Then,
each in a fresh process so that the generator's memory does not count: encodes it (MB/s of the file, peak
resident memory), opens the cache a second time, and builds the default model and takes its first training
step from the cache. The folder is deleted at the end. Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from charrnn.bench.corpus import run_step, write_corpus
from charrnn.errors import check, cli_errors


@cli_errors
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="charrnn bench corpus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="corpus size in GB (10^9 bytes)")
    parser.add_argument("--ascii", action="store_true", help="no non-ASCII words (the fast ASCII path)")
    parser.add_argument("--dir", default=None, help="where to make the temporary folder (default: the system's)")
    args = parser.parse_args(argv)
    check(0 < args.gb <= 1000, f"--gb must be in (0, 1000], got {args.gb}")
    workdir = Path(tempfile.mkdtemp(prefix="charrnn-bench-corpus-", dir=args.dir))
    try:
        corpus = workdir / "corpus.txt"
        start = time.perf_counter()
        size = write_corpus(corpus, int(args.gb * 1e9), args.ascii)
        print(f"corpus: {size / 1e9:.2f} GB written in {time.perf_counter() - start:.0f} s", flush=True)
        encode = run_step("encode", corpus, workdir)
        speed = size / 1e6 / encode["seconds"]
        print(f"encode: {encode['seconds']:.1f} s, {speed:.1f} MB/s, peak RSS {encode['peak_rss_mb']} MB "
              f"({encode['rss_after_import_mb']} MB after imports)", flush=True)
        reopen = run_step("open", corpus, workdir)
        print(f"second run: cache opened in {reopen['seconds']:.3f} s (peak RSS {reopen['peak_rss_mb']} MB)",
              flush=True)
        train = run_step("train", corpus, workdir)
        print(f"training from the cache: first step done {train['seconds']:.2f} s after the Trainer started, "
              f"{train['since_launch_s']:.2f} s after the process did", flush=True)
        figures = {"corpus_bytes": size, "ascii_only": args.ascii, "encode_s": encode["seconds"],
                   "encode_mb_s": round(speed, 1), "encode_peak_rss_mb": encode["peak_rss_mb"],
                   "rss_after_import_mb": encode["rss_after_import_mb"], "tokens": encode["tokens"],
                   "cache_open_s": reopen["seconds"], "first_step_s": train["seconds"],
                   "first_step_since_launch_s": train["since_launch_s"],
                   "cache_bytes": sum(p.stat().st_size for p in (workdir / "data" / "cache").rglob("*.npy"))}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures))
    return figures
