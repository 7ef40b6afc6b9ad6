"""A sink connector that refuses some records, at ``produce`` or in its delivery report."""

from __future__ import annotations

from typing import Any

from swimstream.streams.connector import DeliveryCallback
from swimstream.testing import MemorySink


class RefusingSink(MemorySink):
    """Refuses a value holding ``refuse`` sent to one of ``topics``: ``produce`` raises
    ``BufferError`` (a full queue), or with ``at_delivery`` the record is kept and its
    report is an error (a broker that never took it)."""

    def __init__(self, *topics: str, at_delivery: bool = False) -> None:
        super().__init__()
        self._topics = topics
        self._at_delivery = at_delivery

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        refused = topic in self._topics and value is not None and b"refuse" in value
        if refused and not self._at_delivery:
            raise BufferError("queue full")
        if refused and on_delivery is not None:
            on_delivery = _Failing(on_delivery)
        super().produce(topic, key, value, headers, on_delivery)


class _Failing:
    def __init__(self, report: DeliveryCallback) -> None:
        self._report = report

    def __call__(self, error: BaseException | None) -> Any:
        return self._report(TimeoutError("message timed out"))
