"""Dead letters on a real Redis: recorded whatever their payload holds, merged when a task dies again."""

from __future__ import annotations

import redis

from lepton_runtime.jobs import DeadLetterStore, new_dead_letter


def test_a_payload_that_utf8_cannot_encode_is_recorded_and_read_back_unchanged(redis_client: redis.Redis) -> None:
    store = DeadLetterStore(redis_client)
    texts = ["\ud800 broken", "café 東京 🙂"]  # a lone surrogate beside characters that UTF-8 encodes
    letter = new_dead_letter(
        id="t1", queue="lepton.inference", task="lepton.classify", args=[texts, "tiny", None],
        code="inference_failed", message="the model failed", attempts=1,
    )  # fmt: skip
    store.add(letter)
    store.add(letter)  # the same task dead again: one letter, its attempts added
    (listed,) = store.list("lepton.inference")
    assert listed.args[0] == texts and listed.attempts == 2 and listed.first_seen == letter.first_seen
    assert store.take("t1").args[0] == texts
    assert store.list("lepton.inference") == []
