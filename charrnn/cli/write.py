"""`charrnn write`: write a text together with a model in the terminal.

    charrnn write --checkpoint checkpoints/lstm --text "ROMEO:"

After each turn the text so far is shown with the model's numbered suggestions (whole words first, then single
characters, each with its probability). Type a number to take that suggestion, `u` to undo the last turn, an
empty line to stop; anything else is added to the text as typed (end a line with `\\n` for a newline, `\\ ` for a
trailing space, and `\\5` to add a number itself). The text is printed at the end.
"""

from __future__ import annotations

import sys

from charrnn.cli.common import model_command_parser
from charrnn.errors import check, cli_errors
from charrnn.hub.resolve import load
from charrnn.sampling.suggest import MAX_CHARS, Suggester


def shown(text: str) -> str:
    return text.replace(" ", "␣").replace("\n", "↵")


def typed(line: str) -> str:
    """What a typed line adds: `\\n` is a newline, a backslash before any other character keeps it as it is."""
    out, chars = [], iter(line)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            out.append("\n" if escaped == "n" else escaped)
        else:
            out.append(char)
    return "".join(out)


@cli_errors
def main(argv=None, stdin=None, stdout=None) -> str:
    parser = model_command_parser("charrnn write", __doc__)
    parser.add_argument("--text", default="", help="the text to start from (default: none, the start of a line)")
    parser.add_argument("--suggestions", type=int, default=5, help="words and characters suggested (default: 5)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="of the suggestions: 1 = the model's own probabilities (default: 1)")
    parser.add_argument("--max-chars", type=int, default=MAX_CHARS,
                        help=f"the longest word suggested, in characters (default: {MAX_CHARS})")
    args = parser.parse_args(argv)
    check(1 <= args.suggestions <= 20, f"--suggestions must be in [1, 20], got {args.suggestions}")
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    checkpoint = load(args.checkpoint, args.revision)
    suggester = Suggester(checkpoint.model, checkpoint.tokenizer)
    text, history = typed(args.text), []
    while True:
        found = suggester.suggest(text, args.suggestions, args.temperature, args.max_chars)
        choices = [s.text for s in found.words + found.chars]
        print(f"\n{text}▏", file=stdout)
        print("   ".join(f"[{i}] {shown(s.text)} {s.probability:.1%}"
                         for i, s in enumerate(found.words + found.chars, 1)), file=stdout)
        print("number = take it, u = undo, empty = stop, other text = add it> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        line = line[:-1] if line.endswith("\n") else line
        if not line:
            break
        if line == "u":
            text = history.pop() if history else text
            continue
        history.append(text)
        text += choices[int(line) - 1] if line.isdigit() and 1 <= int(line) <= len(choices) else typed(line)
    print(f"\n{text}", file=stdout)
    return text
