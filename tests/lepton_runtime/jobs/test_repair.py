"""Finding lost chunk messages on a real Redis: a stalled job's chunk whose message is in no broker list."""

from __future__ import annotations

import redis

from lepton_runtime.jobs.repair import lost_chunks, stalled_jobs
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import take_message


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
