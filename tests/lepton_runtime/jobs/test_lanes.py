"""The interactive lane's streams in a real Redis: quotas per tenant, weighted reads, claims of the dead, acks."""

from __future__ import annotations

import pytest
import redis

from lepton_runtime.errors import InvalidInputError, QuotaExceededError
from lepton_runtime.jobs.keys import interactive_stream_key
from lepton_runtime.jobs.lanes import InteractiveLane, LaneRequest, check_tenant, weighted_counts


def request(number: int, tenant: str = "a", deadline: float | None = None) -> LaneRequest:
    return LaneRequest(
        id=f"r{number}", texts=[f"text {number}"], model="tiny@1", sha256="0" * 64, tenant=tenant, deadline=deadline
    )


def test_a_tenant_over_its_quota_is_refused_while_another_is_admitted(redis_client: redis.Redis) -> None:
    lane = InteractiveLane(redis_client)
    assert [lane.admit(request(i), quota=3) for i in range(3)] == [1, 2, 3]
    with pytest.raises(QuotaExceededError, match=r"tenant 'a' has 3 requests waiting .* quota .* is 3"):
        lane.admit(request(3), quota=3)
    assert lane.admit(request(4, tenant="b"), quota=3) == 1
    assert lane.depths() == {"a": 3, "b": 1}
    assert redis_client.xlen(interactive_stream_key("a")) == 3, "the refused request left nothing behind"


def test_reads_take_from_each_tenant_by_weight_and_acks_free_the_quota(redis_client: redis.Redis) -> None:
    lane = InteractiveLane(redis_client)
    for i in range(20):
        lane.admit(request(i, tenant="a"), quota=100)
        lane.admit(request(100 + i, tenant="b"), quota=100)
    counts = weighted_counts(lane.tenants(), {"a": 3.0}, capacity=8)
    assert counts == {"a": 6, "b": 2}
    read = lane.read("consumer-1", counts)
    assert [r.tenant for r in read].count("a") == 6 and [r.tenant for r in read].count("b") == 2
    assert [r.id for r in read if r.tenant == "a"] == [f"r{i}" for i in range(6)], "each tenant's in order"
    assert lane.read("consumer-2", {"a": 100}, block_ms=10)[0].id == "r6", "a second consumer gets the next ones"
    lane.ack(read)
    assert lane.depths() == {"a": 14, "b": 18}


def test_requests_of_a_consumer_that_died_are_claimed_with_their_delivery_count(redis_client: redis.Redis) -> None:
    lane = InteractiveLane(redis_client)
    for i in range(3):
        lane.admit(request(i), quota=10)
    taken = lane.read("dead-consumer", {"a": 2})
    assert len(taken) == 2
    assert lane.claim("survivor", ["a"], idle_ms=60_000, count=10) == [], "not idle long enough yet"
    claimed = lane.claim("survivor", ["a"], idle_ms=0, count=10)
    assert [(r.id, r.deliveries) for r in claimed] == [("r0", 2), ("r1", 2)]
    again = lane.claim("third", ["a"], idle_ms=0, count=10)
    assert [r.deliveries for r in again] == [3, 3]
    lane.ack(again)
    assert lane.claim("fourth", ["a"], idle_ms=0, count=10) == []
    assert [r.id for r in lane.read("fourth", {"a": 10})] == ["r2"]


def test_the_oldest_request_and_expiry_are_known(redis_client: redis.Redis) -> None:
    lane = InteractiveLane(redis_client)
    assert lane.oldest_enqueued_at() is None
    lane.admit(request(1, deadline=1.0), quota=10)
    oldest = lane.oldest_enqueued_at()
    assert oldest is not None and oldest > 1_700_000_000
    (read,) = lane.read("c", {"a": 1})
    assert read.expired(now=2.0) and not request(2).expired(now=2.0)


def test_tenant_names_are_checked() -> None:
    assert check_tenant("team-a.prod_1") == "team-a.prod_1"
    for bad in ("", "a b", "x" * 65, "-lead", "a:b"):
        with pytest.raises(InvalidInputError, match="tenant"):
            check_tenant(bad)


def test_an_entry_that_is_no_request_is_deleted_not_handed_out_again(redis_client: redis.Redis) -> None:
    lane = InteractiveLane(redis_client)
    lane.admit(request(1), quota=10)
    redis_client.xadd(interactive_stream_key("a"), {"request": '{"id": "x", "texts": "not a list"}'})
    redis_client.xadd(interactive_stream_key("a"), {"request": "not json"})
    assert [r.id for r in lane.read("c", {"a": 10})] == ["r1"]
    assert redis_client.xlen(interactive_stream_key("a")) == 1, "only the real request is left, pending"
