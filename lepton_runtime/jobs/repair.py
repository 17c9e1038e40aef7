"""Lost messages: the unfinished chunks of a stalled bulk job, and the training runs, that no broker list holds,
found to be sent again.

kombu's Redis transport takes a message off its queue with BRPOP and only afterwards records it as
unacknowledged. A message popped just as the connection drops (a Redis restart or failover) is then in
neither place and would never run (celery/kombu#305, celery/celery#4354); its job would wait forever. The job
store knows which chunks are unfinished, so a sweep compares them with the messages Redis holds:

a running job with no chunk started or finished for ``stalled_after_s`` -> stalled
fewer messages in the queue and the unacknowledged hash than unfinished chunks -> something may be lost
  (otherwise, as when a job only waits behind others, nothing is read further)
a stalled job's queued or running chunks among those sent (its window: the chunks past ``dispatched`` wait in its
  record, not in the broker) with no message in a queue list or the unacknowledged hash -> lost

A chunk sent again that was not lost after all (its message in a worker's hands at the very moment of the
sweep) runs twice, which a chunk may: its rows are stored once.

Training runs (whose message a producer that died before sending never sent, too):
a queued run older than ``stalled_after_s`` whose message is in no training list and no unacknowledged hash -> lost
a running run whose holder has not beaten for the heartbeat timeout and whose message waits nowhere -> lost (its
  worker died, froze or was cut off; the message it held comes back only after the training visibility timeout)
A run sent again runs once: a second delivery is told 'held' while a live holder beats (training_runs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from itertools import chain
from typing import cast

import redis

from lepton_runtime.constants import INFERENCE_QUEUE, REDIS_KEY_PREFIX, TRAINING_QUEUE
from lepton_runtime.jobs.keys import (
    CHUNK_TASK_MARK,
    JOB_INDEX_KEY,
    TRAINING_INDEX_KEY,
    TRAINING_UNACKED_KEYS,
    UNACKED_KEY,
    JobKeys,
    TrainingKeys,
    queue_lists,
)

# Messages read from Redis per round trip while looking for a job's chunks.
SCAN_PAGE = 1000
# At most this many of the newest jobs are looked at per sweep.
JOBS_PER_SWEEP = 10_000
UNFINISHED = ("queued", "running")
TRAINING_UNACKED_KEY = f"{REDIS_KEY_PREFIX}{TRAINING_UNACKED_KEYS['unacked_key']}"


def _unfinished_jobs(client: redis.Redis) -> list[tuple[str, float, int]]:
    """(job, time of its last chunk start or finish, its chunks sent and unfinished) for every job whose producer
    sent its first window and that is still queued or running, among the newest ``JOBS_PER_SWEEP``."""
    job_ids = cast(list[str], client.zrevrange(JOB_INDEX_KEY, 0, JOBS_PER_SWEEP - 1))
    fields = ["state", "enqueued_at", "active_at", "dispatched", "done_chunks", "failed_chunks", "cancelled_chunks"]
    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(JobKeys(job_id).record, fields)
        records = pipe.execute()
    unfinished = []
    for job_id, (state, enqueued_at, active_at, sent, done, failed, cancelled) in zip(job_ids, records, strict=True):
        if state not in UNFINISHED or enqueued_at is None:
            continue  # finished, expired, or its producer is still sending it
        left = int(sent or 0) - int(done or 0) - int(failed or 0) - int(cancelled or 0)
        unfinished.append((job_id, float(active_at or enqueued_at), left))
    return unfinished


def _stalled(unfinished: list[tuple[str, float, int]], stalled_after_s: float) -> list[str]:
    now = time.time()
    return [job_id for job_id, active_at, _ in unfinished if now - active_at >= stalled_after_s]


def stalled_jobs(client: redis.Redis, stalled_after_s: float) -> list[str]:
    """Jobs fully sent and still running whose last chunk start or finish is older than ``stalled_after_s``."""
    return _stalled(_unfinished_jobs(client), stalled_after_s)


def messages_held(client: redis.Redis) -> int:
    """Messages of the inference queue that Redis holds: waiting in its lists or delivered and not acknowledged."""
    with client.pipeline(transaction=False) as pipe:
        for key in queue_lists(INFERENCE_QUEUE):
            pipe.llen(key)
        pipe.hlen(UNACKED_KEY)
        return sum(pipe.execute())


def chunks_in_broker(client: redis.Redis, job_ids: list[str]) -> dict[str, set[int]]:
    """For each job, the chunks that have a message waiting in the inference queue or held unacknowledged."""
    found: dict[str, set[int]] = {job_id: set() for job_id in job_ids}
    if not job_ids:
        return found
    pattern = re.compile("(" + "|".join(map(re.escape, job_ids)) + ")" + re.escape(CHUNK_TASK_MARK) + r"(\d+)\.")

    def note(message: str) -> None:
        for job_id, chunk in pattern.findall(message):
            found[job_id].add(int(chunk))

    for message in chain(waiting_messages(client, INFERENCE_QUEUE), unacked_messages(client, UNACKED_KEY)):
        note(message)
    return found


def waiting_messages(client: redis.Redis, queue: str) -> Iterator[str]:
    """Every message waiting in ``queue``'s lists, page by page, as JSON text."""
    for key in queue_lists(queue):
        start = 0
        while page := cast(list[str], client.lrange(key, start, start + SCAN_PAGE - 1)):
            yield from page
            start += SCAN_PAGE


def unacked_messages(client: redis.Redis, unacked_key: str) -> Iterator[str]:
    """Every message delivered and not acknowledged in one unacknowledged hash, page by page, as JSON text."""
    for _, message in client.hscan_iter(unacked_key, count=SCAN_PAGE):
        yield message


def lost_chunks(client: redis.Redis, stalled_after_s: float) -> dict[str, list[int]]:
    """Per stalled job, its unfinished chunks that no broker list holds (jobs with none are left out)."""
    unfinished = _unfinished_jobs(client)
    stalled = _stalled(unfinished, stalled_after_s)
    if not stalled or messages_held(client) >= sum(left for _, _, left in unfinished):
        return {}  # every unfinished chunk can still have its message: no need to read them all
    with client.pipeline(transaction=False) as pipe:
        for job_id in stalled:
            pipe.hget(JobKeys(job_id).record, "dispatched")
            pipe.hgetall(JobKeys(job_id).chunk_states)
        replies = pipe.execute()
    present = chunks_in_broker(client, stalled)  # read after the states: a chunk sent meanwhile counts as present
    lost = {}
    for job_id, sent, chunk_states in zip(stalled, replies[::2], replies[1::2], strict=True):
        missing = sorted(
            int(index)
            for index, state in chunk_states.items()
            if state in UNFINISHED and int(index) < int(sent or 0) and int(index) not in present[job_id]
        )
        if missing:
            lost[job_id] = missing
    return lost


def lost_training_runs(client: redis.Redis, stalled_after_s: float, heartbeat_timeout_s: float) -> list[str]:
    """Training runs to send again: queued ones with no message anywhere, running ones whose holder went silent
    with no message waiting (oldest first, among the newest ``JOBS_PER_SWEEP``)."""
    run_ids = cast(list[str], client.zrevrange(TRAINING_INDEX_KEY, 0, JOBS_PER_SWEEP - 1))
    with client.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.hmget(TrainingKeys(run_id).record, ["state", "created_at", "heartbeat_at"])
        records = pipe.execute()
    now = time.time()
    queued, silent = [], []
    for run_id, (state, created_at, heartbeat_at) in zip(run_ids, records, strict=True):
        if state == "queued" and now - float(created_at) >= stalled_after_s:
            queued.append(run_id)
        elif state == "running" and now - float(heartbeat_at or 0) >= heartbeat_timeout_s:
            silent.append(run_id)
    if not queued and not silent:
        return []
    waiting = _run_ids_in(waiting_messages(client, TRAINING_QUEUE), queued + silent)
    held = _run_ids_in(unacked_messages(client, TRAINING_UNACKED_KEY), queued) if queued else set()
    lost = [run_id for run_id in queued if run_id not in waiting and run_id not in held]
    lost += [run_id for run_id in silent if run_id not in waiting]
    return lost[::-1]


def _run_ids_in(messages: Iterator[str], run_ids: list[str]) -> set[str]:
    """The ``run_ids`` named by (the task id of) one of the messages."""
    pattern = re.compile("|".join(map(re.escape, run_ids)))
    return {match for message in messages for match in pattern.findall(message)}
