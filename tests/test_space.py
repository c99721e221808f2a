"""The folder deploys as a Hugging Face Space under the Hub's rules of 2026: the README's front matter passes the
Hub's checks, the exported requirements build on ZeroGPU and on CPU hardware (docs/spaces_support.json), and every
binary file is routed to Xet/LFS by .gitattributes (the Hub refuses binaries in plain git).
"""

import json
import os
import re
import shutil
import subprocess
import tomllib

import pytest
from huggingface_hub import metadata_load
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import ROOT

SUPPORT = json.loads((ROOT / "docs" / "spaces_support.json").read_text())  # what the Hub builds, per hardware
SPACE_TORCH = re.compile(r"sed -i 's/\^torch==\.\*/torch==([\d.]+)/'")  # docs/deploy.md's export sets it
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


def space_pins() -> dict:
    """requirements.txt as docs/deploy.md exports it to the Space: with the Space's own torch pin."""
    torch = SPACE_TORCH.findall((ROOT / "docs" / "deploy.md").read_text())
    assert len(torch) == 1, "docs/deploy.md's export sets the Space's torch pin once"
    return {**pins(), "torch": torch[0]}


@pytest.fixture(scope="module")
def front_matter() -> dict:
    data = metadata_load(ROOT / "README.md")
    assert data, "README.md must start with the Space's YAML front matter"
    return data


def test_the_front_matter_names_a_gradio_space_with_the_pinned_version(front_matter):
    assert front_matter["sdk"] == "gradio"
    assert str(front_matter["sdk_version"]) == pins()["gradio"]
    assert (ROOT / front_matter["app_file"]).is_file()


def test_the_python_version_is_one_zerogpu_and_cpu_hardware_run(front_matter):
    version = front_matter["python_version"]
    assert isinstance(version, str), "quote python_version: YAML reads 3.10 as the number 3.1"
    assert re.fullmatch(r"3\.\d+(\.\d+)?", version), SUPPORT["cpu"]["python"]
    assert any(listed == version or listed.startswith(version + ".") for listed in SUPPORT["zerogpu"]["python"])


def test_the_exported_requirements_build_on_zerogpu(front_matter):
    zerogpu, space = SUPPORT["zerogpu"], space_pins()
    assert space["torch"] in zerogpu["torch"], f"ZeroGPU builds only torch {', '.join(zerogpu['torch'])}"
    assert Version(str(front_matter["sdk_version"])) >= Version(zerogpu["gradio_min"])
    assert "spaces" in space  # the decorator of the Train tab's GPU function


def test_both_torch_pins_lie_in_the_packages_range():
    """The quick start's torch and the Space's are both releases the package says it supports."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(Requirement(line) for line in dependencies if Requirement(line).name == "torch")
    for version in (pins()["torch"], space_pins()["torch"]):
        assert torch.specifier.contains(version), f"torch {version} is outside pyproject.toml's {torch}"


@pytest.mark.skipif(os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true"), reason="on ZeroGPU")
def test_spaces_gpu_off_zerogpu_leaves_the_train_tab_function_as_it_is():
    """requirements.txt installs `spaces` everywhere; off ZeroGPU its decorator hands back the function, so the
    Train tab runs the trainer in this process, as with no `spaces` at all."""
    spaces = pytest.importorskip("spaces")
    from charrnn.service.training import runner

    def run(manager, job):
        return 0

    assert spaces.GPU(duration=runner._gpu_seconds)(run) is run and spaces.GPU(run) is run
    assert runner.spaces is spaces and not runner.ZERO_GPU

    assert runner.train(lambda job: f"trained {job}", "job-1") == "trained job-1"


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
