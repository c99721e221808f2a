import json
import math

import pytest
import torch

from charrnn.checkpoint import load_checkpoint
from charrnn.evaluate import evaluate_ids, evaluate_text, main


def test_evaluation_equals_the_plain_cross_entropy_of_one_pass(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    text = "First Citizen:\nSpeak, speak.\n" * 30
    ids = checkpoint.tokenizer.encode(text)
    with torch.no_grad():
        x = torch.from_numpy(ids[None, :-1])
        _, _, loss = checkpoint.model(x, targets=torch.from_numpy(ids[None, 1:]))
    result = evaluate_ids(checkpoint.model, ids, streams=1, chunk=50)  # chunks carry the hidden state
    assert result["nats"] == pytest.approx(loss.item(), rel=1e-5)
    assert result["bpc"] == pytest.approx(loss.item() / math.log(2), rel=1e-5)
    assert result["chars"] == len(text) - 1


def test_streams_score_every_token_once(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    ids = checkpoint.tokenizer.encode("All:\nResolved. resolved.\n" * 50)
    assert evaluate_ids(checkpoint.model, ids, streams=7, chunk=16)["tokens"] == len(ids) - 1


def test_unknown_characters_are_scored_and_listed(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    result = evaluate_text(checkpoint.model, checkpoint.tokenizer, "All: 🎉 speak")
    assert result["unknown_chars"] == ["🎉"] and math.isfinite(result["nats"])


def test_evaluate_cli_on_a_file_and_on_a_dataset_folder(tiny_checkpoint, text_file, parquet_folder, capsys):
    main(["--checkpoint", str(tiny_checkpoint), "--dataset", str(text_file)])
    on_file = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert on_file["chars"] == len(text_file.read_text()) - 1 and on_file["bpc"] > 0
    main(["--checkpoint", str(tiny_checkpoint), "--dataset", str(parquet_folder), "--split", "validation"])
    on_split = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert on_split["bpc"] > 0 and "validation" in on_split["data"]


def test_evaluate_cli_names_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "none"), "--text", "hello"])
    assert "does not exist" in capsys.readouterr().err
