"""Agents only read while no state changes do not pile up in the durable store's overlay.

A passivated agent waits in the overlay until the checkpoint that captures it is
written. An idle instance makes no checkpoint, so agents loaded by reads (an HTTP GET,
a link) and passivated unchanged stayed there for good: memory grew with every agent
read. Once the checkpointer finds nothing to cut, committed state holds them all.
"""

from __future__ import annotations

from swimstream.store.checkpoint import Checkpointer
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.tracker import StateTracker
from swimstream.testing import open_plane
from tests.store.test_checkpoint_refused import RefusingChangelog, Source
from tests.store.test_checkpoint_turns import Meter

AGENTS = 40


async def test_agents_read_and_passivated_unchanged_leave_the_overlay_when_nothing_changed() -> (
    None
):
    store = DurableAgentStore(MemoryCommitted())
    async with open_plane({"/meter/:id": Meter}, store=store, max_active=5) as plane:
        tracker = StateTracker(store, lambda _node: 0)
        tracker.attach(plane)
        source = Source()
        checkpointer = Checkpointer(
            plane=plane,
            tracker=tracker,
            store=store,
            sink=RefusingChangelog(),  # type: ignore[arg-type]  # a stand-in that takes all
            changelog_topic="app.changelog",
            partitions=1,
            runners=[source],  # type: ignore[list-item]  # a stand-in
            exactly_once=False,
            interval=600.0,
            group_metadata=None,
        )
        checkpointer.start()
        for n in range(AGENTS):
            await plane.command(f"/meter/{n}", "read", n)
        source.routed = AGENTS
        await plane.settle()
        await checkpointer.commit_now()
        await checkpointer.local.drained()
        plane.passivate_idle()
        assert plane.active_agents <= 5
        # Passivated after the checkpoint's collect, the last agents wait for the next.
        await checkpointer.commit_now()
        await checkpointer.local.drained()
        assert store.overlay_size == 0

        for n in range(AGENTS):  # reads only: each agent loaded, then passivated
            assert plane.activate_existing(f"/meter/{n}")
            assert plane.get(f"/meter/{n}", "level") == n
            await plane.settle()
            plane.passivate_idle()
        assert store.overlay_size >= AGENTS - 5
        assert checkpointer.unchanged()

        await checkpointer.commit_now()  # finds nothing to cut
        assert store.overlay_size == 0
        for n in range(AGENTS):  # and every agent still loads as it was
            assert plane.get(f"/meter/{n}", "level") == n
            await plane.settle()
            plane.passivate_idle()
        await checkpointer.close()


async def test_the_overlay_keeps_agents_whose_checkpoint_is_not_written_yet() -> None:
    """Committed state lacks what a checkpoint still being written holds: the overlay
    keeps those agents even when nothing changed since."""
    store = DurableAgentStore(MemoryCommitted())
    async with open_plane({"/meter/:id": Meter}, store=store, max_active=1) as plane:
        tracker = StateTracker(store, lambda _node: 0)
        tracker.attach(plane)
        for n in range(3):
            await plane.command(f"/meter/{n}", "read", n + 10)
        await plane.settle()
        plane.passivate_idle()
        tracker.collect()
        store.next_generation()  # collected, and not written: not in committed state
        store.settle()
        assert store.overlay_size >= 2
        assert [plane.get(f"/meter/{n}", "level") for n in range(3)] == [10, 11, 12]
