"""Whatever a callback raises fails its own message only: the agents' loop runs on.

An exception whose ``str()`` raises, ``CancelledError``, ``SystemExit`` or
``KeyboardInterrupt`` out of a callback used to end the scheduler's loop (or the source
loop running a record at once): every agent's turns stopped while the sources read on,
and checkpoints committed past records no agent had handled. An async callback that let
an inner task's ``CancelledError`` out left its record neither handled nor failed.
"""

from __future__ import annotations

import asyncio

import pytest

from swimstream import Agent, CommandLane, ValueLane
from swimstream.errors import CallbackError
from swimstream.runtime.origin import Ack
from swimstream.streams.dead_letter import reason_of
from swimstream.testing import open_plane


class Unreadable(Exception):
    """A library's exception whose ``__str__`` reads an attribute it never set."""

    def __str__(self) -> str:
        return str(self.detail)  # type: ignore[attr-defined]  # AttributeError


RAISED: dict[str, BaseException] = {
    "unreadable": Unreadable(),
    "cancelled": asyncio.CancelledError(),
    "exit": SystemExit(3),
    "interrupt": KeyboardInterrupt(),
}


class Hostile(Agent):
    count = ValueLane[int](default=0)
    go = CommandLane[str]()
    go_async = CommandLane[str]()

    @go.on_command
    def on_go(self, kind: str) -> None:
        if kind in RAISED:
            raise RAISED[kind]
        self.count.set(self.count.get() + 1)

    @go_async.on_command
    async def on_go_async(self, kind: str) -> None:
        await asyncio.sleep(0)
        if kind == "inner-cancelled":
            inner = asyncio.ensure_future(asyncio.sleep(10))
            inner.cancel()
            await inner  # its CancelledError escapes this callback
        elif kind in RAISED:
            raise RAISED[kind]
        self.count.set(self.count.get() + 1)


@pytest.mark.parametrize("now", [False, True], ids=["queued", "run-at-once"])
@pytest.mark.parametrize("kind", sorted(RAISED))
async def test_whatever_a_callback_raises_fails_its_message_and_the_next_runs(
    kind: str, now: bool
) -> None:
    results: list[BaseException | None] = []
    async with open_plane({"/h/:id": Hostile}) as plane:
        await plane.command("/h/1", "go", "fine")
        plane.submit("/h/1", "go", kind, results.append, now=now)
        plane.submit("/h/1", "go", "fine", results.append, now=now)
        await plane.settle()
        assert plane.running and plane.crashed is None
        assert plane.get("/h/1", "count") == 2
        failed, fine = results
        assert isinstance(failed, CallbackError) and fine is None
        assert type(failed.__cause__) is type(RAISED[kind])
        assert plane.statistics().callback_failures == 1
        assert reason_of(failed).startswith("on_command of lane 'go' on agent /h/1 raised: ")


@pytest.mark.parametrize("kind", ["inner-cancelled", "unreadable", "exit", "interrupt"])
async def test_whatever_an_async_callback_raises_fails_its_message(kind: str) -> None:
    results: list[BaseException | None] = []
    async with open_plane({"/h/:id": Hostile}) as plane:
        plane.submit("/h/1", "go_async", kind, results.append)
        plane.submit("/h/1", "go_async", "fine", results.append)
        await plane.settle()
        assert plane.running
        assert plane.get("/h/1", "count") == 1
        failed, fine = results
        assert isinstance(failed, CallbackError) and fine is None


def test_the_reason_of_an_exception_whose_text_cannot_be_read_still_names_it() -> None:
    error = CallbackError("/h/1", "go", "on_command")
    error.__cause__ = Unreadable()
    reason = reason_of(error)
    assert reason.startswith("on_command of lane 'go' on agent /h/1 raised: Unreadable: ")
    assert "Unreadable()" in reason  # (its repr, when its str raises)


async def test_a_scheduler_that_fails_says_so_and_its_close_leaves_nothing_to_cut_past() -> None:
    """Past the callbacks: an ack whose own work raises (a framework fault) still ends
    the loop, and the plane tells its owner (the service then stops, exit 1)."""
    told: list[BaseException] = []

    def broken_ack(error: BaseException | None) -> None:
        raise RuntimeError("the dead-letter producer is gone")

    ack: Ack = broken_ack
    async with open_plane({"/h/:id": Hostile}) as plane:
        plane._crash.listener = told.append  # (the service passes its own at construction)
        plane.submit("/h/1", "go", "unreadable", ack)
        plane.submit("/h/2", "go", "fine")
        for _ in range(20):
            await asyncio.sleep(0)
        assert not plane.running
        assert isinstance(plane.crashed, RuntimeError) and told == [plane.crashed]
    assert plane.dropped >= 1  # a final checkpoint refuses to cut (see Checkpointer)


async def test_the_plane_keeps_within_the_attributes_whose_keys_instances_share() -> None:
    """CPython 3.11 shares the keys of instances' attribute dicts up to 30 of them: two
    attributes more (a crash listener and its error) made the plane's dict a plain one,
    and every attribute read on the per-record path slower (+1.5% instructions a
    record, ``bench/instructions_bench.py``)."""
    async with open_plane({"/h/:id": Hostile}) as plane:
        await plane.command("/h/1", "go", "fine")
        assert len(vars(plane)) < 30, sorted(vars(plane))
