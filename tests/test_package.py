"""The installable package: one `charrnn` command whose subcommands are the modules' CLIs, and nothing that
assumes the current folder is the repository."""

import pytest

from charrnn import cli, paths
from charrnn.data import load_presets, resolve_source


def test_charrnn_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"  {name} " in out


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_command_calls_itself_charrnn_name_in_its_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: charrnn {name} ")


def test_an_unknown_command_names_the_valid_ones(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian': choose train, sample" in capsys.readouterr().err


def test_presets_are_package_data_and_load_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.PRESETS_FILE.parent == paths.PACKAGE_DIR
    assert "tiny_shakespeare" in load_presets()
    assert resolve_source("tiny_shakespeare").paths == ["karpathy/tiny_shakespeare"]


def test_caches_go_to_charrnn_data_dir_else_the_checkout_else_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_DATA_DIR", str(tmp_path / "mine"))
    assert paths.data_dir() == tmp_path / "mine"
    monkeypatch.delenv("CHARRNN_DATA_DIR")
    assert paths.data_dir() == paths.SOURCE_TREE / "data"  # the tests run from a source checkout
    monkeypatch.setattr(paths, "SOURCE_TREE", None)  # as when installed into site-packages
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.data_dir() == tmp_path / "cache" / "charrnn"


def test_the_readme_and_the_help_texts_name_only_paths_a_user_has():
    from tests.conftest import ROOT

    for path in [ROOT / "README.md", *sorted((ROOT / "charrnn").rglob("*.py"))]:
        assert "../shared" not in path.read_text(encoding="utf-8"), path
