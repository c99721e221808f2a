"""A trained job's model pushed to the Hugging Face Hub with the visitor's token, never the host's login unless
the host allows it."""

from __future__ import annotations

from charrnn.errors import check
from charrnn.hub.resolve import HUB_ID
from charrnn.service import inputs
from charrnn.service.training.jobs import Job
from charrnn.service.training.limits import TrainLimits


def push_job(job: Job, limits: TrainLimits, repo_id, token=None, oauth_token=None) -> str:
    """Push the job's model to the Hub as `repo_id` (user/name) with a model card; returns the commit URL.

    The token is the visitor's: `token` as typed, else `oauth_token`, that of the visitor signed in with
    Hugging Face (a gr.OAuthToken, or anything with a `.token`). The host's own login is used only where the
    host allows it (TrainLimits.host_token)."""
    # Imported on the first push: the card reads checkpoints with torch, and the page is built without torch.
    from charrnn.hub.card import hub_datasets
    from charrnn.hub.push import push_to_hub

    repo_id = inputs.text(repo_id, "the Hub repository", 200, allow_empty=False).strip()
    check(HUB_ID.fullmatch(repo_id) is not None, f"{repo_id!r} is not a Hub repository: write user/name")
    check((job.folder / "best").is_dir(), "this job has no model yet: wait for its first evaluation")
    signed_in = getattr(oauth_token, "token", None)
    token = inputs.text(token, "the token", 500).strip() or (signed_in if isinstance(signed_in, str) else "")
    check(bool(token) or limits.host_token,
          "pushing to the Hub needs your Hugging Face token with write access: sign in with Hugging Face where "
          "the page offers it, or paste a token from https://huggingface.co/settings/tokens")
    # The card's Hub metadata names the dataset the text came from (the checkpoint's --dataset is text.txt).
    datasets = hub_datasets({"dataset": [job.dataset]}) if job.dataset else []
    return push_to_hub(job.folder, repo_id, token=token or None, datasets=datasets)
