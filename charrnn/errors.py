"""User-facing errors: one exception type whose message says what was wrong and what to do."""

import functools
import sys


class CharRNNError(Exception):
    """A problem the user can fix (bad input, missing file, unreachable Hub). Shown without a traceback."""


def cli_errors(main):
    """Wrap a CLI entry point so a CharRNNError prints `error: ...` and exits 2 instead of a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except CharRNNError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def check(condition: bool, message: str) -> None:
    """Raise CharRNNError(message) unless condition holds."""
    if not condition:
        raise CharRNNError(message)
