"""One-text clients in threads, each with its own LeptonClient: when each request was sent and which version answered
it, and every failure (counted, never hidden). For tests that switch model versions under traffic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient

TEXT = "my card was declined"


class OneTextClients:
    """``with OneTextClients(settings, "tiny", 8) as clients:`` sends until the block ends (or ``stop``)."""

    def __init__(self, settings: LeptonSettings, model: str, count: int, pause_s: float = 0.0) -> None:
        self.settings, self.model, self.pause_s = settings, model, pause_s
        self.answers: list[tuple[float, int | None]] = []  # (monotonic time sent, the version that answered)
        self.failures: list[str] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._send) for _ in range(count)]

    def __enter__(self) -> OneTextClients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for_answers(self, count: int, timeout_s: float = 60) -> None:
        """Until ``count`` requests were answered."""
        self._wait_until(lambda: len(self.answers) >= count, timeout_s, f"{count} answers")

    def wait_for_one_sent_after(self, moment: float, timeout_s: float = 120) -> None:
        """Until a request sent after ``moment`` (monotonic) was answered."""
        self._wait_until(lambda: any(sent > moment for sent, _ in self.answers), timeout_s, "an answer after it")

    def versions_sent(self, *, before: float | None = None, after: float | None = None) -> list[int | None]:
        return [
            version for sent, version in self.answers
            if (before is None or sent < before) and (after is None or sent > after)
        ]  # fmt: skip

    def _wait_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s; failures: {self.failures[:3]}"
            time.sleep(0.05)

    def _send(self) -> None:
        with LeptonClient(self.settings) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    (prediction,) = client.classify([TEXT], model=self.model).wait(60)
                    with self._lock:
                        self.answers.append((sent, prediction.model.version))
                except Exception as error:  # counted, never hidden
                    with self._lock:
                        self.failures.append(f"{type(error).__name__}: {error}")
                if self.pause_s:
                    self._stop.wait(self.pause_s)
