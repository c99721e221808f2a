"""`charrnn export`: a folder with everything a static web page needs to run a model in the browser, no server.

    charrnn export --checkpoint checkpoints/lstm --out site/
    python -m http.server -d site/        then open http://127.0.0.1:8000

The model goes out as one ONNX step (token and state in, next-token logits and state out), checked against
torch with onnxruntime before the page is written. The page loads ONNX Runtime Web from a copy beside it when
one is found (--runtime; works offline) or from a CDN.
"""

from __future__ import annotations

import json

from charrnn.cli.common import model_command_parser
from charrnn.errors import check, cli_errors
from charrnn.export.runtime import CHOICES, VERSION, choose_runtime
from charrnn.export.site import CHECK_LENGTH, PAGE_FILE, export_site
from charrnn.hub.resolve import load


@cli_errors
def main(argv=None) -> dict:
    parser = model_command_parser("charrnn export", __doc__)
    parser.add_argument("--out", default="site", help="folder to write the page into (default: site)")
    parser.add_argument("--runtime", default="auto",
                        help=f"where the page gets onnxruntime-web: {CHOICES} (its dist/ or node_modules/; copied "
                             "beside the page, which then works offline). auto: ./node_modules/onnxruntime-web if "
                             f"present, else the CDN's {VERSION} (default: auto)")
    parser.add_argument("--check-length", type=int, default=CHECK_LENGTH,
                        help=f"tokens of the model's own text over which the ONNX model must give torch's "
                             f"next-token probabilities (default: {CHECK_LENGTH})")
    args = parser.parse_args(argv)
    check(1 <= args.check_length <= 100_000, f"--check-length must be in [1, 100000], got {args.check_length}")
    runtime = choose_runtime(args.runtime)
    checkpoint = load(args.checkpoint, args.revision)
    site = export_site(checkpoint, args.out, runtime, args.check_length)
    print(f"wrote {site.folder}/: {', '.join(path.name for path in site.files)}")
    print(f"checked against torch over {site.check_tokens} tokens: next-token probabilities differ by at most "
          f"{site.difference:.1e}")
    print(f"runtime: {runtime.describe()}")
    print(f"serve it with `python -m http.server -d {site.folder}` and open http://127.0.0.1:8000/{PAGE_FILE}")
    result = {"folder": str(site.folder), "files": [path.name for path in site.files],
              "max_probability_difference": site.difference, "check_tokens": site.check_tokens,
              "runtime": "vendored" if runtime.vendored else "cdn", "runtime_version": runtime.version}
    print(json.dumps(result))
    return result
