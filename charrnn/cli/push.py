"""Share a model on the Hugging Face Hub: its weights, its config and a generated model card.

    charrnn push runs/gru user/charrnn-gru                   # a run folder: its best/ checkpoint
    charrnn push checkpoints/lstm user/charrnn-lstm --private
    charrnn push runs/gru user/charrnn-gru --training-state  # also last/, so --resume user/charrnn-gru works

Needs a token with write access: log in once with `hf auth login`, or set HF_TOKEN.
"""

from __future__ import annotations

import argparse
import json

from charrnn.errors import cli_errors
from charrnn.hub.push import push_to_hub


@cli_errors
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="charrnn push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a run folder (its best/ checkpoint is pushed) or a checkpoint folder")
    parser.add_argument("repo_id", help="the model's Hub id, user/name (created if it does not exist)")
    parser.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps "
                                                               "its visibility)")
    parser.add_argument("--revision", default=None, help="branch to commit to, created from main if needed "
                                                         "(default: main)")
    parser.add_argument("--training-state", action="store_true",
                        help="also upload the run's last/ checkpoint with optimizer and RNG state, so that "
                             "`charrnn train --resume user/name` continues it exactly")
    parser.add_argument("--license", default="mit", help="license of the model, a Hub license id (default: mit)")
    parser.add_argument("--dataset", dest="datasets", action="append", default=None, metavar="ID",
                        help="Hub dataset id it was trained on, for the card (repeatable; default: read from the "
                             "training config)")
    parser.add_argument("--message", default=None, help="commit message")
    args = parser.parse_args(argv)
    url = push_to_hub(args.path, args.repo_id, revision=args.revision, private=args.private,
                      training_state=args.training_state, license=args.license, datasets=args.datasets,
                      commit_message=args.message)
    result = {"repo_id": args.repo_id, "revision": args.revision or "main", "commit_url": url}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
