"""Demand lanes compute only when a linked client cues them, and store nothing."""

from typing import Any

from swimstream import Agent, CommandLane, DemandMapLane, DemandValueLane, ValueLane
from swimstream.testing import open_plane


class Expensive(Agent):
    raw = ValueLane[int](default=0)
    report = DemandValueLane[dict[str, int]]()
    per_key = DemandMapLane[str, int]()
    calls: dict[str, int]

    def on_start(self) -> None:
        self.calls = {"report": 0, "per_key": 0}

    @raw.on_set
    def raw_changed(self, new: int, old: int) -> None:
        self.report.cue()
        self.per_key.cue("double")

    @report.on_cue
    def compute_report(self) -> dict[str, int]:
        self.calls["report"] += 1
        return {"raw": self.raw.get(), "squared": self.raw.get() ** 2}

    @per_key.on_cue
    def compute_key(self, key: str) -> int | None:
        self.calls["per_key"] += 1
        return self.raw.get() * 2 if key == "double" else None

    @per_key.on_sync
    def keys(self) -> list[str]:
        return ["double"]


class Viewer(Agent):
    view = ValueLane[Any](default=None)
    keys = ValueLane[dict[str, int]](default={})
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "report", on_set=self.report_changed)
        self.map_downlink(node, "per_key", on_update=self.key_changed)

    def report_changed(self, new: Any, old: Any) -> None:
        self.view.set(new)

    def key_changed(self, key: str, new: int, old: int | None) -> None:
        self.keys.set({**self.keys.get(), key: new})


ROUTES = {"/x/:id": Expensive, "/viewer/:id": Viewer}


async def test_without_links_cues_compute_nothing() -> None:
    async with open_plane(ROUTES) as plane:
        for n in range(5):
            await plane.command("/x/1", "raw", n)
        await plane.settle()
        assert plane.agent("/x/1").calls == {"report": 0, "per_key": 0}  # type: ignore[attr-defined]


async def test_a_link_syncs_a_fresh_value_and_each_burst_of_cues_computes_once() -> None:
    async with open_plane(ROUTES) as plane:
        await plane.command("/x/1", "raw", 3)
        await plane.command("/viewer/v", "watch", "/x/1")
        await plane.settle()
        assert plane.get("/viewer/v", "view") == {"raw": 3, "squared": 9}
        assert plane.get("/viewer/v", "keys") == {"double": 6}
        expensive = plane.agent("/x/1")
        before = dict(expensive.calls)  # type: ignore[attr-defined]
        for n in range(4, 10):  # six changes queued before the agent runs: six cues
            plane.submit("/x/1", "raw", n)
        await plane.settle()
        assert plane.get("/viewer/v", "view") == {"raw": 9, "squared": 81}
        assert plane.get("/viewer/v", "keys") == {"double": 18}
        calls = expensive.calls  # type: ignore[attr-defined]
        assert calls["report"] - before["report"] == 1  # the cues coalesced into one computation
        assert calls["per_key"] - before["per_key"] == 1


class Shelves(Agent):
    stock = ValueLane[dict[str, int]](default={})
    levels = DemandMapLane[int, int]()

    @stock.on_set
    def stock_changed(self, new: dict[str, int], old: dict[str, int]) -> None:
        for shelf in (1, 2, 3):
            self.levels.cue(shelf)

    @levels.on_cue
    def level(self, shelf: int) -> int | None:
        if shelf == 1 and self.stock.get().get("broken"):
            raise RuntimeError("shelf 1 cannot be read")
        return self.stock.get().get("n", 0) * shelf

    @levels.on_sync
    def shelves(self) -> list[int]:
        return [1, 2, 3]


class ShelfViewer(Agent):
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.link = self.map_downlink(node, "levels")


async def test_a_cued_key_whose_on_cue_raises_keeps_no_other_cued_key_from_its_links() -> None:
    """The keys cued together are computed in one turn: one whose ``on_cue`` raised
    took the others with it, taken from the cues and never streamed, and the links
    showed their old values until they were cued again."""
    async with open_plane({"/shelves/:id": Shelves, "/viewer/:id": ShelfViewer}) as plane:
        await plane.command("/shelves/s", "stock", {"n": 1})
        await plane.command("/viewer/v", "watch", "/shelves/s")
        await plane.settle()
        await plane.command("/shelves/s", "stock", {"n": 5, "broken": 1})
        await plane.settle()
        assert plane.failures.count == 1
        link = plane.agent("/viewer/v").link  # type: ignore[attr-defined]
        assert link.to_dict() == {1: 1, 2: 10, 3: 15}


async def test_a_key_whose_on_cue_raises_at_sync_keeps_no_other_key_from_the_link() -> None:
    """A link opening on a demand map lane computes every key ``on_sync`` names: one
    that raised left the link with nothing at all, never synced, until a later cue."""
    async with open_plane({"/shelves/:id": Shelves, "/viewer/:id": ShelfViewer}) as plane:
        await plane.command("/shelves/s", "stock", {"n": 5, "broken": 1})
        await plane.command("/viewer/v", "watch", "/shelves/s")
        await plane.settle()
        assert plane.failures.count == 1
        link = plane.agent("/viewer/v").link  # type: ignore[attr-defined]
        assert link.synced
        assert link.to_dict() == {2: 10, 3: 15}
        await plane.command("/shelves/s", "stock", {"n": 2})  # shelf 1 readable again
        await plane.settle()
        assert link.to_dict() == {1: 2, 2: 4, 3: 6}


class Unlisted(Agent):
    levels = DemandMapLane[int, int]()

    @levels.on_cue
    def level(self, shelf: int) -> int | None:
        return shelf

    @levels.on_sync
    def shelves(self) -> list[int]:
        raise RuntimeError("the shelf list cannot be read")


async def test_a_raising_on_sync_still_syncs_the_link_empty() -> None:
    async with open_plane({"/shelves/:id": Unlisted, "/viewer/:id": ShelfViewer}) as plane:
        await plane.command("/viewer/v", "watch", "/shelves/s")
        await plane.settle()
        assert plane.failures.count == 1
        link = plane.agent("/viewer/v").link  # type: ignore[attr-defined]
        assert link.synced
        assert link.to_dict() == {}
        plane.agent("/shelves/s").levels.cue(7)  # type: ignore[attr-defined]
        await plane.settle()
        assert link.to_dict() == {7: 7}


class Flaky(Agent):
    raw = ValueLane[int](default=0)
    report = DemandValueLane[int]()
    watch = CommandLane[str]()

    @raw.on_set
    def raw_changed(self, new: int, old: int) -> None:
        self.report.cue()

    @report.on_cue
    def compute(self) -> int:
        if self.raw.get() < 0:
            raise RuntimeError("no report for a negative")
        return self.raw.get() * 10

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.link = self.downlink(node, "report")


async def test_a_demand_value_whose_on_cue_raises_at_sync_syncs_the_link_at_its_next_cue() -> None:
    async with open_plane({"/x/:id": Flaky}) as plane:
        await plane.command("/x/1", "raw", -1)
        await plane.command("/x/2", "watch", "/x/1")
        await plane.settle()
        assert plane.failures.count == 1
        link = plane.agent("/x/2").link  # type: ignore[attr-defined]
        assert not link.synced
        await plane.command("/x/1", "raw", 4)
        await plane.settle()
        assert link.synced and link.get() == 40
