import pytest

from tools.stress.kills import EVAL_INTERVAL, run


@pytest.mark.slow
def test_kill_9_during_training_leaves_every_checkpoint_readable_and_resumable(tmp_path):
    # A few kills: each round starts a process (torch's import dominates: ~3 s on an idle 2-core machine).
    result = run(kills=3, seconds=60, workdir=tmp_path)
    assert result["kills"] >= 1, result
    assert result["unreadable_checkpoints"] == 0 and result["stale_folders_after_next_save"] == 0, result
    assert result["resume_failures"] == 0 and result["unexpected_exits"] == 0, result
    assert result["max_steps_lost"] <= EVAL_INTERVAL and result["final_step"] is not None, result
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best", "last", "metrics.jsonl"]
