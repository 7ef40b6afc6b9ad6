"""Acknowledgements the Pulsar client may lose, kept until they are past losing.

The client does not send an acknowledgement when it is given one: it groups them for
up to 100 ms (or 1,000 of them), and what it holds when the connection goes is dropped;
an acknowledgement given while the consumer is disconnected is accepted and dropped as
well. The broker then redelivers those messages after the reconnect, and the service,
which committed them, would apply them a second time (measured on pulsar-lite: 8
records committed 10-50 ms before the broker restarted came again, every time; all
those committed during the outage, every time).

So the source keeps, per consumer:

* ``recent``: the acknowledgements given in the last :data:`AT_RISK` seconds while
  connected. A message among them that arrives again is a copy: it is dropped, and
  acknowledged again.
* ``unsent``: acknowledgements to give once the consumer is connected again: those given
  while it was not, and the recent ones when the connection is seen gone. A message
  among them that arrives is dropped and acknowledged.

Memory: the acknowledgements of one :data:`AT_RISK` period, and what was committed
during an outage (bounded by what the consumer had received before it: it receives
nothing while disconnected). Time: consuming and committing 50k messages on pulsar-lite
ran at ~135k/s with this book, ~177k/s without (about 2 us a message, against the
service's 12k-27k records/s). Ids are forgotten after :data:`AT_RISK` seconds, not kept
for good: pulsar-lite numbers entries from 0, so a broker that lost its data gives new
messages the ids of old ones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

IdT = TypeVar("IdT")

AT_RISK = 1.0
"""Seconds an acknowledgement given while connected counts as possibly lost: the
client's 100 ms grouping, plus the longest the service leaves a source unasked (0.25 s,
so an outage shorter than that may go unseen) and the redelivery after the reconnect."""


class AckBook(Generic[IdT]):
    """The acknowledgements of one consumer that its client may yet lose."""

    __slots__ = ("_given", "_recent", "unsent")

    def __init__(self) -> None:
        self._recent: dict[Hashable, IdT] = {}
        self._given: deque[tuple[float, list[Hashable]]] = deque()
        """``(when, identities)`` of the acknowledgements in ``_recent``, oldest first
        (one given again is forgotten with its first time: a third delivery of one
        message is rare enough)."""
        self.unsent: dict[Hashable, IdT] = {}

    def given(self, acknowledged: Sequence[tuple[IdT, Hashable]], now: float) -> None:
        """Acknowledgements ``(message id, identity)`` handed to the client of a connected
        consumer at ``now``."""
        recent = self._recent
        identities: list[Hashable] = []
        append = identities.append
        for message_id, identity in acknowledged:
            recent[identity] = message_id
            append(identity)
        self._given.append((now, identities))

    def held(self, acknowledged: Sequence[tuple[IdT, Hashable]]) -> None:
        """Acknowledgements ``(message id, identity)`` to give once the consumer is
        connected again."""
        self.unsent.update((identity, message_id) for message_id, identity in acknowledged)

    def seen(self, connected: bool, now: float) -> list[tuple[IdT, Hashable]]:
        """Note whether the consumer is connected at ``now``; the acknowledgements
        ``(message id, identity)`` to give now (those held back, once it is connected
        again)."""
        recent = self._recent
        if not connected:
            if recent:
                self.unsent.update(recent)
                recent.clear()
                self._given.clear()
            return []
        given = self._given
        while given and now - given[0][0] > AT_RISK:
            for identity in given.popleft()[1]:
                recent.pop(identity, None)
        if not self.unsent:
            return []
        unsent, self.unsent = self.unsent, {}
        return [(message_id, identity) for identity, message_id in unsent.items()]

    def copy(self, identity: Hashable) -> IdT | None:
        """The message id to acknowledge (again) when a message with ``identity`` is a
        copy of one committed already; None when it is not."""
        unsent = self.unsent
        if unsent:
            message_id = unsent.pop(identity, None)
            if message_id is not None:
                return message_id
        return self._recent.get(identity)

    def __bool__(self) -> bool:
        return bool(self._recent or self.unsent)

    def __len__(self) -> int:
        return len(self._recent) + len(self.unsent)
