"""Share a model on the Hugging Face Hub: its best checkpoint, a generated model card with a sample, and
optionally the resumable state of its run (so `charrnn train --resume user/name` continues it).

    charrnn.push_to_hub("runs/latest", "user/name")
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError

from charrnn import __version__
from charrnn.checkpoint.folder import CONFIG, TRAINING_STATE, WEIGHTS
from charrnn.checkpoint.saving import Checkpoint, load_checkpoint
from charrnn.errors import CharRNNError
from charrnn.hub.card import build_card
from charrnn.hub.reach import check_reachable
from charrnn.hub.resolve import LOGIN_HINT, RUN_STATE, split_revision
from charrnn.sampling.generate import SamplingSettings, stream


def _push_sources(path: Path, training_state: bool) -> tuple[Path, Path | None]:
    """(the checkpoint to publish, the resumable checkpoint to add under last/ or None) for a run or checkpoint
    folder: a run folder publishes its best/, a checkpoint folder itself."""
    if not path.is_dir():
        raise CharRNNError(f"{path} does not exist: give a run folder (holding best/) or a checkpoint folder")
    best = path / "best" if (path / "best").is_dir() else path
    if not training_state:
        return best, None
    last = path / RUN_STATE if (path / RUN_STATE).is_dir() else path
    if not (last / TRAINING_STATE).is_file():
        raise CharRNNError(f"--training-state needs a run folder whose {RUN_STATE}/ holds {TRAINING_STATE}; "
                           f"{path} has none")
    return best, last


def push_to_hub(path: str | Path, repo_id: str, *, revision: str | None = None, private: bool = False,
                training_state: bool = False, token: str | None = None, license: str = "mit",
                datasets: list[str] | None = None, commit_message: str | None = None) -> str:
    """Upload a model (a run folder's best/ checkpoint, or a checkpoint folder) to the Hub as `repo_id`, with a
    generated model card; returns the commit's URL.

    The repo is created if needed (`private` applies only then). `revision` commits to that branch, made from
    main if it does not exist. `training_state` also uploads the run's last/ checkpoint (float32 weights,
    optimizer and RNG state), so that `charrnn train --resume user/name` continues the run exactly.
    """
    repo_id, revision = split_revision(repo_id, revision)
    token = token or get_token()
    if not token:
        raise CharRNNError(f"pushing to the Hub needs a token with write access: {LOGIN_HINT}")
    best, last = _push_sources(Path(path), training_state)
    checkpoint = load_checkpoint(best)
    settings = SamplingSettings(temperature=0.8)
    sample = "".join(piece[0] for piece in stream(checkpoint.model, checkpoint.tokenizer, "", 600, settings, seed=0))
    card = build_card(checkpoint, repo_id, sample=sample, revision=revision, license=license, datasets=datasets,
                      sample_settings="What it wrote from an empty prompt (temperature 0.8, seed 0, 600 characters):")

    operations = [CommitOperationAdd(WEIGHTS, str(best / WEIGHTS)), CommitOperationAdd(CONFIG, str(best / CONFIG)),
                  CommitOperationAdd("README.md", str(card).encode("utf-8"))]
    if last is not None:
        operations += [CommitOperationAdd(f"{RUN_STATE}/{name}", str(last / name))
                       for name in (WEIGHTS, CONFIG, TRAINING_STATE)]
    check_reachable(f"push to {repo_id!r}", "check your connection and try again", repo_id)
    api = HfApi(token=token, library_name="charrnn", library_version=__version__)
    try:
        repo_id = api.create_repo(repo_id, private=private or None, exist_ok=True).repo_id
        if revision and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.create_commit(repo_id, operations, revision=revision,
                                   commit_message=commit_message or f"Upload {_title(checkpoint)}")
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            raise CharRNNError(f"the Hub refused to write to {repo_id!r} ({status}): the token needs write access "
                               f"to it; {LOGIN_HINT}") from None
        raise CharRNNError(f"the Hub refused the push to {repo_id!r}: {str(err).splitlines()[0]}") from None
    return commit.commit_url


def _title(checkpoint: Checkpoint) -> str:
    config, params = checkpoint.model.config, checkpoint.model.num_params()
    return f"charrnn {config.cell} {config.num_layers}x{config.hidden_size} ({params:,} parameters)"
