"""User-facing errors: one exception type whose message says what was wrong and what to do."""

import argparse
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


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: ...` and exit code 2, like a CharRNNError, without the usage block."""

    def error(self, message):
        self.exit(2, f"error: {message} ({self.prog} --help lists the options)\n")


def check_text(text: str, what: str) -> None:
    """Refuse text that cannot be written out as UTF-8: the lone surrogates that undecodable bytes on a
    command line (or in a JSON string) become."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise CharRNNError(f"{what} is not valid text (character {err.start} is a lone surrogate "
                           f"{text[err.start]!r}, e.g. from bytes that are not UTF-8); give UTF-8 text") from None
