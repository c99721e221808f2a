"""Loading checks a checkpoint before it allocates, and names what is wrong: every kind of broken folder."""

import resource

import pytest

from charrnn.checkpoint.arrays import load_arrays
from charrnn.checkpoint.saving import find_checkpoints, load_checkpoint, save_checkpoint
from charrnn.errors import CharRNNError
from tools.stress.broken import BREAKAGES, LEFTOVERS, make_broken_checkpoints


@pytest.fixture(scope="module")
def broken_root(tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("broken")
    make_broken_checkpoints(tiny_checkpoint, root)
    return root


LOADERS = [load_checkpoint, load_arrays]  # torch's, and the arrays a run without torch samples from


@pytest.mark.parametrize("load", LOADERS, ids=["torch", "arrays"])
@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_each_broken_folder_gets_a_message_naming_the_file(broken_root, name, load):
    with pytest.raises(CharRNNError) as caught:
        load(broken_root / name)
    message = str(caught.value)
    assert str(broken_root / name) in message
    assert "Traceback" not in message and len(message.splitlines()) == 1


@pytest.mark.parametrize("load", LOADERS, ids=["torch", "arrays"])
def test_a_huge_config_is_refused_before_allocating(broken_root, load):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CharRNNError, match="parameters"):
        load(broken_root / "huge_hidden_size")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: nothing big was allocated


@pytest.mark.parametrize("load", LOADERS, ids=["torch", "arrays"])
def test_shape_and_value_checks_say_what_is_wrong(broken_root, load):
    with pytest.raises(CharRNNError, match="tokenizer has .* tokens but the model"):
        load(broken_root / "vocabulary_mismatch")
    with pytest.raises(CharRNNError, match="does not match config.json"):
        load(broken_root / "hidden_mismatch")
    with pytest.raises(CharRNNError, match="NaN or infinite"):
        load(broken_root / "nan_weights")


def test_leftovers_of_an_interrupted_save_are_not_checkpoints(broken_root, tiny_checkpoint):
    found = {p.name for p in find_checkpoints(broken_root)}
    assert not found & set(LEFTOVERS)
    assert {"nan_weights", "vocabulary_mismatch"} <= found  # complete-looking broken folders are still found


def test_a_good_checkpoint_still_loads_after_the_checks(tiny_checkpoint, tmp_path):
    loaded = load_checkpoint(tiny_checkpoint)
    tied = tmp_path / "tied"
    from charrnn.config import ModelConfig
    from charrnn.model import CharRNN

    model = CharRNN(ModelConfig(vocab_size=loaded.tokenizer.vocab_size, embedding_size=16, hidden_size=16,
                                tie_weights=True))
    save_checkpoint(tied, model, loaded.tokenizer)
    reloaded = load_checkpoint(tied).model
    assert reloaded.head.weight is reloaded.embedding.weight


def test_the_app_starts_beside_every_kind_of_broken_folder_and_names_them(broken_root, tiny_checkpoint, capsys):
    import shutil

    from charrnn.app.page import build_app
    from charrnn.service import ModelLibrary, check_all

    shutil.copytree(tiny_checkpoint, broken_root / "good", dirs_exist_ok=True)
    library = ModelLibrary(broken_root, hub_ids=[])
    assert check_all(library) == ["good"]
    assert library.names() == ["good"]
    listed_broken = set(BREAKAGES) - {"weights_is_a_folder"}  # a folder without a weights file is no checkpoint
    assert set(library.skipped) == listed_broken
    log = capsys.readouterr().err
    assert all(f"skipped {name}:" in log for name in listed_broken)
    demo = build_app(library)
    pickers = [block for block in demo.blocks.values() if type(block).__name__ == "Dropdown"]
    assert pickers and all("nan_weights" not in str(p.choices) for p in pickers)
    card = next(fn for fn in demo.fns.values() if fn.name == "card").fn
    assert "Skipped broken checkpoint folders" in card("good") and "nan_weights" in card("good")


def test_folders_are_checked_without_loading_before_the_page_and_loaded_after(broken_root, tiny_checkpoint):
    import shutil

    from charrnn.app.page import build_app
    from charrnn.service import ModelLibrary, check_all, check_folders

    shutil.copytree(tiny_checkpoint, broken_root / "good", dirs_exist_ok=True)
    library = ModelLibrary(broken_root, hub_ids=[])
    # only NaN weights need the weights read: every other kind is caught from the config and the file's header
    assert sorted(check_folders(library)) == ["good", "nan_weights"]
    assert set(library.skipped) == set(BREAKAGES) - {"weights_is_a_folder", "nan_weights"}
    demo = build_app(library)
    pickers = [block for block in demo.blocks.values() if type(block).__name__ == "Dropdown"
               and str(block.label).startswith("Model")]
    assert all("nan_weights" in str(p.choices) for p in pickers if "LSTM or GRU" not in str(p.label))

    assert check_all(library) == ["good"]  # what warm_up does once the page is up
    on_load = next(fn for fn in demo.fns.values() if fn.name == "on_load").fn
    updates = on_load(None)[-len(pickers):]  # a page opened now lists only the models that loaded
    assert [update["choices"] for update in updates] == [["good"]] * len(pickers)
