"""The memory test's live retraining (charrnn.service.retraining): one at a time, its visitor's to watch again after
a reload, stopped when no page watches it or past its budget, and the shipped models' plot whenever it gives none."""

import threading
import time

import pytest

from charrnn.service import inside, retraining


@pytest.fixture(scope="module")
def shipped():
    return inside.memory_models()


def held(models, release: threading.Event):
    """A training that reports progress until `release` is set (or it is stopped), then gives `models`."""
    def train(progress):
        step = 0
        while not release.wait(0.02):
            step += 1
            progress(min(step / 100, 0.99), f"step {step}")
        return models
    return train


def title(chart) -> str:
    return chart["title"]["text"]


def test_a_real_retraining_reports_progress_and_draws_the_new_models():
    from charrnn.analysis import memory

    settings = memory.MemorySettings(steps=40, hidden_size=8, batch_size=8, days=40)
    jobs = retraining.MemoryRetraining(train=lambda progress: memory.train_models(settings, progress))
    updates = list(retraining.retrain(jobs, "owner"))
    assert updates[0].message.startswith("Retraining the three tiny models: 0% done")
    fractions = [u.fraction for u in updates[:-1]]
    assert fractions == sorted(fractions) and updates[-1].fraction == 1.0
    assert updates[-1].message.startswith("Retrained now, in ")
    assert title(updates[-1].chart).endswith("(models retrained now)")
    assert {row["model"] for row in updates[-1].chart["data"]["values"]} == {"rnn", "gru", "lstm"}


def test_another_visitor_is_refused_with_the_shipped_plot_and_the_owner_watches_again(shipped):
    release = threading.Event()
    jobs = retraining.MemoryRetraining(train=held(shipped, release))
    first = retraining.retrain(jobs, "a", page="page 1")
    assert next(first).message.startswith("Retraining the three tiny models")
    assert list(retraining.follow(jobs, "a", page="page 1")) == []  # the page that started it shows it once
    for other in ("b", None):  # another visitor, or a caller without a session key
        [refused] = retraining.retrain(jobs, other, page="page 2")
        assert refused.message.startswith("Another visitor is retraining the models right now")
        assert title(refused.chart) == "Accuracy of the first activity after the rain"  # the shipped models'
    assert list(retraining.follow(jobs, "b", page="page 2")) == []
    reloaded = retraining.follow(jobs, "a", page="page 3")  # the same visitor, after a reload
    assert next(reloaded).message.startswith("Your retraining is still running: ")
    again = retraining.retrain(jobs, "a", page="page 3")  # ... who presses Run again
    assert next(again).message.startswith("Your retraining is still running: ")
    assert list(reloaded) == []  # that page's latest watching reports it; the one the reload began ends
    release.set()
    *_, last = again
    assert title(last.chart).endswith("(models retrained now)")
    first.close()


def test_a_retraining_no_page_watches_stops_after_its_grace(shipped):
    jobs = retraining.MemoryRetraining(grace_seconds=0.3, train=held(shipped, threading.Event()))
    updates = retraining.retrain(jobs, "a")
    next(updates)
    time.sleep(1)
    assert not jobs.job.done.is_set()  # watched: it goes on
    closed = time.monotonic()
    updates.close()  # what Gradio does when the page is closed or the event cancelled
    assert jobs.job.done.wait(5) and time.monotonic() - closed < 2
    assert jobs.job.stopped == "its page was closed" and jobs.job.models is None
    assert next(retraining.retrain(jobs, "b")).message.startswith("Retraining")  # the next visitor may start


def test_a_retraining_past_its_budget_stops_and_the_shipped_plot_stays(shipped):
    jobs = retraining.MemoryRetraining(budget_seconds=0.3, train=held(shipped, threading.Event()))
    *_, last = retraining.retrain(jobs, "a")
    assert last.message.startswith("The retraining stopped after 0 s: it ran past its 0.3 s budget")
    assert last.message.endswith("The shipped models are unchanged; their plot:") and last.fraction is None
    assert title(last.chart) == "Accuracy of the first activity after the rain"
