"""Training run records on a real Redis: idempotent submission, persistent cancel, one finish, rows kept exact."""

from __future__ import annotations

import redis

from lepton_runtime.jobs import TrainingOutcome, TrainingProgress, TrainingRuns, TrainRequest

ROWS = [{"text": "a fine film", "label": "positive"}, {"text": "dull, \u00e9 and \n long", "label": "negative"}]


def _create(runs: TrainingRuns, key: str | None = None) -> tuple[str, bool]:
    return runs.create(TrainRequest(name="m", source="train.jsonl"), ROWS, idempotency_key_value=key)


def test_a_repeated_submission_with_the_same_key_returns_the_first_run(redis_client: redis.Redis) -> None:
    runs = TrainingRuns(redis_client)
    first, created = _create(runs, "nightly")
    again, created_again = _create(runs, "nightly")
    assert (created, created_again, again) == (True, False, first)
    assert [status.id for status in runs.list_runs()] == [first]
    assert runs.rows(first) == (ROWS, [])


def test_a_run_cancelled_while_queued_is_never_started(redis_client: redis.Redis) -> None:
    runs = TrainingRuns(redis_client)
    run_id, _ = _create(runs)
    assert runs.cancel(run_id).state == "cancelled"
    assert runs.start(run_id, "worker-a", 30) == "cancelled"
    assert runs.status(run_id).attempts == 0


def test_a_running_run_sees_the_cancel_flag_and_finishes_once(redis_client: redis.Redis) -> None:
    runs = TrainingRuns(redis_client)
    run_id, _ = _create(runs)
    assert runs.start(run_id, "worker-a", 30) == "run"
    assert runs.start(run_id, "worker-b", 30) == "held"  # a twin delivery while worker-a beats: nothing runs
    assert runs.start(run_id, "worker-b", 0) == "run"  # worker-a silent past the timeout: worker-b takes over
    assert runs.stop_reason(run_id, "worker-a") == "superseded"
    assert not runs.heartbeat(run_id, "worker-a") and runs.heartbeat(run_id, "worker-b")
    runs.report(run_id, TrainingProgress(phase="training", epoch=1, epochs=3, step=4, total_steps=30, loss=0.5))
    assert runs.stop_reason(run_id, "worker-b") is None
    assert runs.cancel(run_id).state == "running"  # it stops at its next step, not before
    assert runs.stop_reason(run_id, "worker-b") == "cancelled"
    assert not runs.mark_cancelled(run_id, "worker-a"), "the superseded holder finishes nothing"
    assert runs.mark_cancelled(run_id, "worker-b")
    outcome = TrainingOutcome(version="m@1", metrics={}, promoted=False, promotion="-", checkpoint="-")
    assert not runs.succeed(run_id, outcome, "worker-b")  # finished already: a late twin cannot overwrite it
    status = runs.status(run_id)
    assert (status.state, status.attempts, status.progress.step, status.outcome) == ("cancelled", 2, 4, None)


def test_success_keeps_the_outcome_and_drops_the_rows(redis_client: redis.Redis) -> None:
    runs = TrainingRuns(redis_client)
    run_id, _ = _create(runs)
    runs.start(run_id, "worker-a", 30)
    outcome = TrainingOutcome(version="m@1", metrics={"validation_accuracy": 0.9}, promoted=True, promotion="first",
                              checkpoint="/c")  # fmt: skip
    assert not runs.succeed(run_id, outcome, "worker-b"), "only its holder finishes a running run"
    assert runs.succeed(run_id, outcome, "worker-a")
    assert runs.status(run_id).outcome == outcome
    assert runs.wait(run_id, 1).state == "succeeded"
    assert not redis_client.exists(f"lepton:train:{run_id}:data")
