"""Finding lost messages on a real Redis: a stalled job's chunk whose message is in no broker list, a training run
with no message or with a silent holder."""

from __future__ import annotations

import redis

from lepton_runtime.jobs import TrainingRuns, TrainRequest
from lepton_runtime.jobs.repair import lost_chunks, lost_training_runs, stalled_jobs
from lepton_runtime.jobs.sending import send_training
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import take_message, take_training_message


def test_only_a_stalled_jobs_chunk_with_no_message_is_lost(
    queue_settings: LeptonSettings, redis_client: redis.Redis, banking: LabelledTexts
) -> None:
    with LeptonClient(queue_settings) as client:  # no worker runs: every chunk waits in the queue
        job = client.submit_bulk(banking.texts[:500], model="tiny", chunk_size=100)
        other = client.submit_bulk(banking.texts[:300], model="tiny", chunk_size=100)
    assert lost_chunks(redis_client, stalled_after_s=0) == {}, "every chunk has its message"
    take_message(redis_client, job.id, 3)
    assert lost_chunks(redis_client, stalled_after_s=3600) == {}, "a job that moved recently is not looked at"
    assert set(stalled_jobs(redis_client, stalled_after_s=0)) == {job.id, other.id}
    assert lost_chunks(redis_client, stalled_after_s=0) == {job.id: [3]}


def test_a_training_run_with_no_message_or_a_silent_holder_is_lost(
    queue_settings: LeptonSettings, redis_client: redis.Redis
) -> None:
    runs = TrainingRuns(redis_client)
    run_id, _ = runs.create(TrainRequest(name="m", source="train.jsonl"), [{"text": "a fine film", "label": "pos"}])
    with LeptonClient(queue_settings) as client:  # no worker runs: the message waits in the training queue
        send_training(client.celery, run_id)
        assert lost_training_runs(redis_client, stalled_after_s=0, heartbeat_timeout_s=30) == []
        take_training_message(redis_client, run_id)  # lost by the broker, or never sent by a producer that died
        assert lost_training_runs(redis_client, stalled_after_s=3600, heartbeat_timeout_s=30) == [], "too young"
        assert lost_training_runs(redis_client, stalled_after_s=0, heartbeat_timeout_s=30) == [run_id]

        assert runs.start(run_id, "worker-a", 30) == "run"  # a live holder beats: not lost, message or not
        assert lost_training_runs(redis_client, stalled_after_s=0, heartbeat_timeout_s=30) == []
        assert lost_training_runs(redis_client, stalled_after_s=0, heartbeat_timeout_s=0) == [run_id], "silent"
        send_training(client.celery, run_id)  # sent again: waiting for a worker, so not sent a third time
        assert lost_training_runs(redis_client, stalled_after_s=0, heartbeat_timeout_s=0) == []
