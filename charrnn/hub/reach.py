"""Whether the Hugging Face Hub answers, asked in seconds: used by everything that downloads (datasets and
models) and by pushes, so it sits below all of them and imports nothing of charrnn but its errors."""

from __future__ import annotations

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, HFValidationError

from charrnn.errors import CharRNNError


def check_reachable(doing: str, hint: str, repo_id: str, repo_type: str = "model") -> None:
    """Fail in seconds, not after minutes of retries, when the Hub cannot be reached.

    Asks the Hub about the repo through huggingface_hub's own HTTP client, so HF_ENDPOINT, HTTPS_PROXY and the
    other proxy variables, HF_TOKEN and HF_HUB_ETAG_TIMEOUT (default 10 s) apply as they do to the download
    itself. Any answer from the Hub, a "not found" included, means it is reachable: the caller words that case.
    """
    try:
        HfApi().repo_info(repo_id, repo_type=repo_type, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except (HfHubHTTPError, HFValidationError):
        return
    except Exception as err:  # noqa: BLE001 - the HTTP backend's connection, proxy and timeout errors
        raise CharRNNError(f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} to {doing} "
                           f"({type(err).__name__}: {err}); {hint}") from None
