"""The folder deploys as a Hugging Face Space under the Hub's rules of 2026: the README's front matter passes the
Hub's checks, and every binary file is routed to Xet/LFS by .gitattributes (the Hub refuses binaries in plain git).
"""

import re
import shutil
import subprocess

import pytest
from huggingface_hub import metadata_load

from tests.conftest import ROOT

ZEROGPU_PYTHONS = {"3.10", "3.12", "3.10.13", "3.12.12"}  # what ZeroGPU runs; free accounts get only ZeroGPU
HARDWARE = {"cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "t4-medium", "l4x1", "a10g-small", "a10g-large"}
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
MAX_PLAIN_FILE = 10 * 1024 * 1024  # the Hub refuses larger files outside Xet/LFS
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
# Scopes of the Hub's OAuth apps (Gradio's own sources ask for write-repos, manage-repos and inference-api)
OAUTH_SCOPES = {"openid", "profile", "email", "read-billing", "read-repos", "write-repos", "manage-repos",
                "inference-api", "write-discussions"}
PIN = re.compile(r"^([\w-]+)(\[[\w,-]+\])?==(\S+)", re.MULTILINE)  # name, [extras], version


def pins() -> dict:
    return {name: version for name, _, version in PIN.findall((ROOT / "requirements.txt").read_text())}


@pytest.fixture(scope="module")
def front_matter() -> dict:
    data = metadata_load(ROOT / "README.md")
    assert data, "README.md must start with the Space's YAML front matter"
    return data


def test_the_front_matter_names_a_gradio_space_with_the_pinned_version(front_matter):
    assert front_matter["sdk"] == "gradio"
    assert str(front_matter["sdk_version"]) == pins()["gradio"]
    assert (ROOT / front_matter["app_file"]).is_file()


def test_the_python_version_is_one_zerogpu_runs(front_matter):
    version = front_matter["python_version"]
    assert isinstance(version, str), "quote python_version: YAML reads 3.10 as the number 3.1"
    assert version in ZEROGPU_PYTHONS


def test_the_card_fields_fit_the_hubs_limits(front_matter):
    assert front_matter["title"] and len(front_matter["short_description"]) <= 60
    assert front_matter["colorFrom"] in COLORS and front_matter["colorTo"] in COLORS
    assert front_matter["suggested_hardware"] in HARDWARE
    assert front_matter["license"] and front_matter["tags"]
    linked = (front_matter.get("models") or []) + (front_matter.get("datasets") or [])
    assert linked and all(HUB_ID.fullmatch(name) for name in linked)


def test_sign_in_with_hugging_face_can_push_models(front_matter):
    """The Train tab pushes with the signed-in visitor's token: OAuth on, with scopes that write and create the
    visitor's repos, and Gradio's OAuth packages installed (without them a gr.LoginButton stops the app)."""
    assert front_matter.get("hf_oauth") is True
    scopes = front_matter.get("hf_oauth_scopes") or []
    assert set(scopes) <= OAUTH_SCOPES and {"write-repos", "manage-repos"} <= set(scopes)
    extras = {name: extra for name, extra, _ in PIN.findall((ROOT / "requirements.txt").read_text())}
    assert "oauth" in extras["gradio"]


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def _routed_to_lfs(names: list[str]) -> set[str]:
    out = subprocess.run(["git", "check-attr", "-z", "filter", "--stdin"], cwd=ROOT, input="\0".join(names).encode(),
                         capture_output=True, check=True).stdout.decode().split("\0")
    return {name for name, _, value in zip(out[0::3], out[1::3], out[2::3]) if value in ("lfs", "xet")}


def _is_binary(path) -> bool:
    with open(path, "rb") as f:
        return b"\0" in f.read(8000)  # git's own test for a binary file


def test_every_tracked_binary_file_is_routed_to_xet_or_lfs():
    names = _tracked_files()
    routed = _routed_to_lfs(names)
    binaries = [name for name in names if _is_binary(ROOT / name)]
    assert any(name.endswith(".safetensors") for name in binaries)  # the check sees the shipped weights
    assert [name for name in binaries if name not in routed] == []


def test_no_tracked_file_outside_xet_or_lfs_is_over_10_mib():
    names = _tracked_files()
    routed = _routed_to_lfs(names)
    assert [name for name in names if name not in routed and (ROOT / name).stat().st_size > MAX_PLAIN_FILE] == []
