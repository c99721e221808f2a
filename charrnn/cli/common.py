"""What several commands share: a parser with the commands' error style, and the way a command names a model."""

from __future__ import annotations

import argparse

from charrnn.errors import ArgumentParser


def model_command_parser(prog: str, description: str) -> ArgumentParser:
    """A parser for a command that works on one model: --checkpoint (a folder or a Hub id) and --revision."""
    parser = ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint folder (e.g. checkpoints/lstm) or Hub id (user/name)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a Hub id (default: main)")
    return parser
