"""The `charrnn` command: one subcommand per module of this folder. Every argparse `main()` of charrnn lives
here; the library modules they call have none.

    charrnn train --dataset my_novel.txt --max-steps 200
    charrnn sample --checkpoint runs/latest/best --prompt "ROMEO:"
"""

from __future__ import annotations

import importlib
import sys

from charrnn import __version__

# name -> (module, one line for `charrnn --help`); a command's module is imported only when it runs.
COMMANDS = {
    "train": ("charrnn.cli.train", "train a model on text files, a folder of .txt or .parquet files, a preset or a "
                               "Hub dataset"),
    "sample": ("charrnn.cli.sample", "write text with a model (a checkpoint folder or a Hub id user/name)"),
    "write": ("charrnn.cli.write", "write a text together with a model: it suggests words, you pick or type"),
    "evaluate": ("charrnn.cli.evaluate", "bits per character of a model on a dataset, a file or a text"),
    "export": ("charrnn.cli.export", "write a static web page that runs a model in the browser (ONNX Runtime Web)"),
    "push": ("charrnn.cli.push", "share a model on the Hugging Face Hub with a generated model card"),
    "bench": ("charrnn.cli.bench", "measure training and sampling speed on this machine"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: charrnn <command> [options]   (charrnn <command> --help for its options)", "",
             "Character-level RNN, GRU and LSTM language models.", "", "commands:"]
    lines += [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"charrnn {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{usage()}\n\ncharrnn: error: unknown command {name!r}: choose {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    importlib.import_module(COMMANDS[name][0]).main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
