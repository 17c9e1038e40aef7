"""Who owns each piece of work: the tenant recorded when a bulk job, a training run or a one-text request was
submitted, and who may see it (its owner, and the operator tenant).

Bulk jobs and training runs keep their tenant in their record; a one-text request (either lane) has a small key of
its own that expires with its answer. Work recorded before tenants owned it belongs to the default tenant.
"""

from __future__ import annotations

from typing import cast

import redis

from lepton_runtime.constants import DEFAULT_TENANT
from lepton_runtime.jobs.keys import CHUNK_TASK_MARK, JobKeys, TrainingKeys, request_owner_key, task_result_key

# The field of a job's or a run's record that names its tenant.
OWNER_FIELD = "tenant"


def owner_of(client: redis.Redis, work_id: str) -> str | None:
    """The tenant owning the bulk job, training run or one-text request ``work_id``; None when there is none (never
    submitted, expired). The same four reads in one round trip whatever the id names, so an id of another tenant's
    work takes as long to answer as an unknown one."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hmget(JobKeys(work_id).record, [OWNER_FIELD, "id"])
        pipe.hmget(TrainingKeys(work_id).record, [OWNER_FIELD, "id"])
        pipe.get(request_owner_key(work_id))
        pipe.exists(task_result_key(work_id))
        job, run, request, answered = pipe.execute()
    for owner, recorded_id in (job, run):
        if recorded_id is not None:
            return cast(str, owner or DEFAULT_TENANT)
    if request is not None:
        return cast(str, request)
    # an answer stored before requests had owners (a chunk task's result is its job's, never a request's)
    return DEFAULT_TENANT if answered and CHUNK_TASK_MARK not in work_id else None


def record_request_owner(client: redis.Redis | redis.client.Pipeline, request_id: str, tenant: str, ttl_s: int) -> None:
    """Record the tenant of a one-text request sent to the bulk lane (the interactive lane records it on admission)."""
    client.set(request_owner_key(request_id), tenant, ex=ttl_s)


def may_see(owner: str | None, tenant: str, operator_tenant: str) -> bool:
    """Whether ``tenant`` may see and act on work owned by ``owner`` (None: no such work): its own, or any for the
    operator tenant."""
    return owner is not None and (owner == tenant or tenant == operator_tenant)
