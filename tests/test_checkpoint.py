import json

import pytest
import torch

from charrnn.checkpoint.saving import (CONFIG, TRAINING_STATE, WEIGHTS, find_checkpoints, load_checkpoint,
                                load_training_state, save_checkpoint, tidy_checkpoint)
from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN
from charrnn.tokenizer import CharTokenizer


def make_model(**overrides) -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=9, embedding_size=8, hidden_size=12, num_layers=2, **overrides)).eval()


def test_save_and_load_give_identical_logits(tmp_path):
    model, tokenizer = make_model(), CharTokenizer("abcdefgh")
    save_checkpoint(tmp_path / "ckpt", model, tokenizer, metrics={"val_bpc": 1.5})
    loaded = load_checkpoint(tmp_path / "ckpt")
    idx = torch.randint(0, 9, (2, 7))
    with torch.no_grad():
        assert torch.equal(model(idx)[0], loaded.model(idx)[0])
    assert loaded.tokenizer.chars == "abcdefgh"
    assert json.loads((tmp_path / "ckpt" / CONFIG).read_text())["metrics"]["val_bpc"] == 1.5


def test_bfloat16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    model, tokenizer = make_model(), CharTokenizer("abcdefgh")
    save_checkpoint(tmp_path / "fp32", model, tokenizer)
    save_checkpoint(tmp_path / "bf16", model, tokenizer, dtype="bfloat16")
    small, big = (tmp_path / "bf16" / WEIGHTS).stat().st_size, (tmp_path / "fp32" / WEIGHTS).stat().st_size
    assert small < 0.6 * big
    loaded = load_checkpoint(tmp_path / "bf16").model
    assert loaded.head.weight.dtype == torch.float32
    torch.testing.assert_close(loaded.head.weight, model.head.weight, rtol=1e-2, atol=1e-2)


def test_tied_weights_round_trip(tmp_path):
    model = CharRNN(ModelConfig(vocab_size=9, embedding_size=12, hidden_size=12, tie_weights=True))
    save_checkpoint(tmp_path / "tied", model, CharTokenizer("abcdefgh"))
    loaded = load_checkpoint(tmp_path / "tied").model
    assert loaded.head.weight is loaded.embedding.weight
    assert torch.equal(loaded.embedding.weight, model.embedding.weight)


def test_saving_over_a_checkpoint_replaces_it_and_leaves_no_temporary_folders(tmp_path):
    tokenizer = CharTokenizer("abcdefgh")
    save_checkpoint(tmp_path / "ckpt", make_model(), tokenizer)
    save_checkpoint(tmp_path / "ckpt", make_model(cell="gru"), tokenizer)
    assert load_checkpoint(tmp_path / "ckpt").model.config.cell == "gru"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert find_checkpoints(tmp_path) == [tmp_path / "ckpt"]


def test_a_crash_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    tokenizer = CharTokenizer("abcdefgh")
    save_checkpoint(tmp_path / "ckpt", make_model(), tokenizer)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("charrnn.checkpoint.saving.save_file", crash)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ckpt", make_model(cell="gru"), tokenizer)
    assert load_checkpoint(tmp_path / "ckpt").model.config.cell == "lstm"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_corrupt_weights_file_is_refused_with_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "ckpt", make_model(), CharTokenizer("abcdefgh"))
    (tmp_path / "ckpt" / WEIGHTS).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CharRNNError, match="corrupt"):
        load_checkpoint(tmp_path / "ckpt")


def test_a_foreign_config_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ckpt", make_model(), CharTokenizer("abcdefgh"))
    (tmp_path / "ckpt" / CONFIG).write_text(json.dumps({"architectures": ["GPT2"]}))
    with pytest.raises(CharRNNError, match="not a charrnn checkpoint"):
        load_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize("missing", [WEIGHTS, CONFIG])
def test_a_checkpoint_folder_missing_a_file_names_it(tmp_path, missing):
    save_checkpoint(tmp_path / "ckpt", make_model(), CharTokenizer("abcdefgh"))
    (tmp_path / "ckpt" / missing).unlink()
    with pytest.raises(CharRNNError, match=f"missing {missing}"):
        load_checkpoint(tmp_path / "ckpt")


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(CharRNNError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_the_next_save_cleans_stale_temporary_folders_of_that_checkpoint_only(tmp_path):
    tokenizer = CharTokenizer("abcdefgh")
    save_checkpoint(tmp_path / "ckpt", make_model(), tokenizer)
    for stale in ("ckpt.tmp-k1ll3d", "ckpt.tmp-0ther"):  # left by kill -9 during earlier saves
        (tmp_path / stale).mkdir()
        (tmp_path / stale / WEIGHTS).write_bytes(b"half a file")
    (tmp_path / "other.tmp-abc").mkdir()  # another checkpoint's save, maybe in progress: not ours to remove
    save_checkpoint(tmp_path / "ckpt", make_model(cell="gru"), tokenizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "other.tmp-abc"]
    assert load_checkpoint(tmp_path / "ckpt").model.config.cell == "gru"


def test_a_crash_between_the_two_renames_leaves_old_and_the_next_save_replaces_it(tmp_path):
    tokenizer = CharTokenizer("abcdefgh")
    save_checkpoint(tmp_path / "ckpt", make_model(), tokenizer)
    (tmp_path / "ckpt").rename(tmp_path / "ckpt.old")  # killed after `ckpt -> ckpt.old`, before `tmp -> ckpt`
    (tmp_path / "ckpt.tmp-k1ll3d").mkdir()
    save_checkpoint(tmp_path / "ckpt", make_model(cell="gru"), tokenizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert load_checkpoint(tmp_path / "ckpt").model.config.cell == "gru"


def test_tidy_puts_old_back_when_the_checkpoint_is_missing_and_removes_it_otherwise(tmp_path):
    tokenizer = CharTokenizer("abcdefgh")
    save_checkpoint(tmp_path / "a", make_model(), tokenizer)
    (tmp_path / "a").rename(tmp_path / "a.old")
    save_checkpoint(tmp_path / "b", make_model(), tokenizer)
    save_checkpoint(tmp_path / "b.old", make_model(cell="gru"), tokenizer)  # a crash during the last rmtree
    tidy_checkpoint(tmp_path / "a")
    tidy_checkpoint(tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert load_checkpoint(tmp_path / "a").model.config.cell == "lstm"
    assert load_checkpoint(tmp_path / "b").model.config.cell == "lstm"


def test_a_corrupt_training_state_is_refused_with_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "last", make_model(), CharTokenizer("abcdefgh"), training_state={"step": 3})
    assert load_training_state(tmp_path / "last") == {"step": 3}
    (tmp_path / "last" / TRAINING_STATE).write_bytes(b"PK\x03\x04 not a whole zip")
    with pytest.raises(CharRNNError, match="is corrupt"):
        load_training_state(tmp_path / "last")
