"""Models on the Hugging Face Hub by id: resolve one to a checkpoint folder, load it, list the app's models.

A Hub id `user/name` (optionally `user/name@revision`) resolves to a checkpoint folder in the Hugging Face cache,
downloaded by `huggingface_hub.snapshot_download` (only the files a checkpoint needs; HF_TOKEN or `hf auth login`
for private models; HF_HUB_OFFLINE=1 answers from the cache). Everything else about checkpoints (the folder
format, loading the model with its tokenizer) stays in charrnn.checkpoint.saving:

    checkpoint = charrnn.load("user/name")          # or a local folder: charrnn.load("runs/latest/best")
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from charrnn import __version__
from charrnn.checkpoint.folder import CONFIG, FORMAT, TRAINING_STATE, WEIGHTS
from charrnn.errors import CharRNNError
from charrnn.paths import README

if TYPE_CHECKING:
    import torch

    from charrnn.checkpoint.saving import Checkpoint

# Loading imports torch (through charrnn.checkpoint.saving) when called: resolving ids and listing the app's
# models do not, so the web app builds its page without torch. huggingface_hub is imported only where a Hub id
# is resolved or the README's front matter read: a local folder (`charrnn sample --checkpoint runs/x`) is
# loaded without it, which is a good part of a short command's start-up.

# user/name, then an optional @revision (a branch, tag or commit)
HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?")
RUN_STATE = "last"  # a pushed run keeps its resumable checkpoint (weights, config, training state) under last/
LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN (a token from https://huggingface.co/settings/tokens)"
MODELS_ENV = "CHARRNN_MODELS"


def is_hub_id(name: str | Path) -> bool:
    """`user/name[@revision]` that is not an existing local path."""
    return isinstance(name, str) and bool(HUB_ID.fullmatch(name)) and not Path(name).exists()


def split_revision(hub_id: str, revision: str | None = None) -> tuple[str, str | None]:
    """'user/name@v2' -> ('user/name', 'v2'); an explicit revision wins."""
    match = HUB_ID.fullmatch(hub_id)
    if match is None:
        raise CharRNNError(f"{hub_id!r} is not a Hub id: write user/name (optionally user/name@revision)")
    return match["repo"], revision or match["revision"]


def resolve(name_or_path: str | Path, revision: str | None = None, *, training_state: bool = False) -> Path:
    """The checkpoint folder on disk for a local folder or a Hub id (downloaded into the Hugging Face cache).

    With training_state=True a Hub id gives the pushed run's resumable checkpoint (its last/ folder).
    """
    if not is_hub_id(name_or_path):
        return Path(name_or_path)
    repo_id, revision = split_revision(str(name_or_path), revision)
    files = [CONFIG, WEIGHTS, TRAINING_STATE] if training_state else [CONFIG, WEIGHTS]
    prefix = f"{RUN_STATE}/" if training_state else ""
    folder = _download(repo_id, revision, [prefix + name for name in files]) / prefix
    where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    if not _is_charrnn_checkpoint(folder):
        if training_state:
            raise CharRNNError(
                f"{where} on the Hub holds no training state to resume from: it was pushed without "
                f"--training-state. Start a new run instead, or push the run folder again with "
                f"`charrnn push RUN_FOLDER {repo_id} --training-state`")
        raise CharRNNError(
            f"{where} on the Hub is not a charrnn model (it has no {WEIGHTS} beside a {CONFIG} of format "
            f"{FORMAT!r}); charrnn loads models shared with `charrnn push`")
    if training_state and not (folder / TRAINING_STATE).is_file():
        raise CharRNNError(f"{where} on the Hub has a {RUN_STATE}/ checkpoint without {TRAINING_STATE}")
    return folder


def load(name_or_path: str | Path, revision: str | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    """A model with its tokenizer, from a local checkpoint folder or a Hub id `user/name`."""
    from charrnn.checkpoint.saving import load_checkpoint

    return load_checkpoint(resolve(name_or_path, revision), device)


def resume_location(resume: str, revision: str | None = None) -> tuple[Path, Path]:
    """The checkpoint a run resumes from (it holds the training state) and the run folder it continues in.

    A local run folder continues in place from its last/ checkpoint; a run pushed with --training-state (a Hub
    id) is downloaded and continues in runs/<name>.
    """
    if is_hub_id(resume):
        repo_id, _ = split_revision(resume, revision)
        return resolve(resume, revision, training_state=True), Path("runs") / repo_id.split("/")[1]
    path = Path(resume)
    checkpoint = path / RUN_STATE if (path / RUN_STATE).is_dir() else path
    return checkpoint, checkpoint.parent if checkpoint.name == RUN_STATE else checkpoint


def _is_charrnn_checkpoint(folder: Path) -> bool:
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT and (folder / WEIGHTS).is_file()


def _download(repo_id: str, revision: str | None, patterns: list[str]) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from charrnn.hub.reach import check_reachable

    where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    unreachable = ("check your connection, set HF_HUB_OFFLINE=1 to use a copy already in your cache, "
                   "or pass a local checkpoint folder")
    kwargs = dict(revision=revision, allow_patterns=patterns, library_name="charrnn", library_version=__version__)
    offline = constants.is_offline_mode()
    if not offline:
        try:
            check_reachable(f"download {where}", unreachable, repo_id)
        except CharRNNError as error:
            try:  # a copy in the cache still serves
                return Path(snapshot_download(repo_id, local_files_only=True, **kwargs))
            except LocalEntryNotFoundError:
                raise error from None
    try:
        return Path(snapshot_download(repo_id, **kwargs))
    except GatedRepoError:
        raise CharRNNError(f"{where} is gated: accept its conditions on https://huggingface.co/{repo_id}, "
                           f"then {LOGIN_HINT}") from None
    except RepositoryNotFoundError:  # the id may also be a mistyped local path: say both
        raise CharRNNError(f"no model {repo_id!r} on the Hugging Face Hub (and no folder {repo_id} here): check "
                           f"the id (user/name) or the path; if the model is private, {LOGIN_HINT}") from None
    except RevisionNotFoundError:
        raise CharRNNError(f"model {repo_id!r} on the Hub has no revision {revision!r} (a branch, tag or "
                           "commit)") from None
    except LocalEntryNotFoundError:
        if offline:
            raise CharRNNError(
                f"{where} is not in your Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1 "
                f"forbids downloading it: unset HF_HUB_OFFLINE to download it once, or pass a local checkpoint "
                f"folder (no checkpoint folder {repo_id} exists here either)") from None
        raise CharRNNError(f"cannot download {where} from the Hugging Face Hub; {unreachable}") from None
    except HfHubHTTPError as err:
        raise CharRNNError(f"the Hugging Face Hub refused {where}: {str(err).splitlines()[0]}") from None


# ---------------------------------------------------------------------------------------------------------
# The app's models


def listed_models(readme: Path | None = None) -> list[str]:
    """Hub ids the app lists beside its checkpoint folders: CHARRNN_MODELS (comma-separated) when set, else the
    `models:` of the README's front matter (the Space's configuration; by default the README beside the package,
    as in a checkout or a Space). An entry that is not a Hub id is skipped with a warning: the app still starts."""
    if os.environ.get(MODELS_ENV) is not None:
        ids, where = [name.strip() for name in os.environ[MODELS_ENV].split(",") if name.strip()], MODELS_ENV
    else:
        from huggingface_hub import metadata_load

        readme = readme or README
        front = metadata_load(readme) if readme.is_file() else None
        ids, where = (front or {}).get("models") or [], f"the models: of {readme}"
        ids = [ids] if isinstance(ids, str) else list(ids)
    for name in [name for name in ids if not HUB_ID.fullmatch(str(name))]:
        print(f"warning: {name!r} in {where} is not a Hub id (user/name or user/name@revision); skipped",
              file=sys.stderr)
        ids.remove(name)
    return ids
