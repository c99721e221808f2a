"""The stress command's Train tab round (tools/stress/train_tab.py), with tiny sizes, against the app itself."""

import pyarrow.parquet as pq
import pytest

from tools.stress.bombs import parquet_bomb
from tools.stress.train_tab import run


def test_the_parquet_bomb_is_kilobytes_that_unpack_to_hundreds_of_millions_of_characters(tmp_path):
    path = parquet_bomb(tmp_path / "bomb.parquet")
    assert path.stat().st_size < 100_000
    table = pq.ParquetFile(path)
    first_row = next(table.iter_batches(batch_size=1)).column(0)[0].as_py()  # one row: the whole is 400 MB
    assert table.metadata.num_rows * len(first_row) >= 400_000_000
    assert str(table.schema_arrow.field("text").type) == "string"  # as any tool writes it, not a category


@pytest.mark.slow
def test_the_train_round_finds_what_the_tab_promises(tmp_path):
    # Two app starts, a tiny model stopped after its first evaluation, two throw-away sessions; each wait bounded.
    result = run(tmp_path, churn_sessions=2, max_chars=300_000)
    assert "stopped_by" not in result, result
    for probe in ("bombs", "other_sessions", "churn", "reload", "kill_and_restart"):
        assert result[probe]["ok"], (probe, result[probe])
    assert result["bombs"]["parquet"]["characters_kept"] <= 300_000
    killed = result["kill_and_restart"]
    assert killed["A"]["trainer_survived_the_kill"] and not killed["A"]["trainer_running_after_restart"]
    assert killed["B"]["state"] == "failed" and not killed["B"]["text_kept"]
    end = result["at_the_end"]
    assert end["trainers_left_running"] == 0 and end["models_lost_at_the_restart"] == [], end
    assert end["empty_owner_folders"] == 0 and end["texts_of_jobs_without_a_model"] == 0, end
    assert end["server_tracebacks"] == 0, end
