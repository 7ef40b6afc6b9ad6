"""The public API is exactly what users write apps with, and every name resolves."""

import swimstream
import swimstream.testing

EXPECTED = {
    "Agent",
    "AgentRestoreError",
    "BrokerError",
    "CallbackError",
    "ClosedResourceError",
    "CodecError",
    "CommandLane",
    "ConfigError",
    "CounterLane",
    "DefinitionError",
    "DemandMapLane",
    "DemandValueLane",
    "InvalidRouteError",
    "JoinMapLane",
    "JoinValueLane",
    "LaneNotFoundError",
    "MapDownlink",
    "MapLane",
    "NodeNotFoundError",
    "Plane",
    "RecordDecodeError",
    "RecordRoutingError",
    "RecordTooLargeError",
    "RoutingError",
    "StoreError",
    "StoreLockedError",
    "StoreWriteError",
    "SwimstreamError",
    "ValueDownlink",
    "ValueLane",
}


def test_all_is_exactly_the_intended_names_sorted() -> None:
    assert set(swimstream.__all__) == EXPECTED
    assert list(swimstream.__all__) == sorted(swimstream.__all__)


def test_every_exported_name_resolves() -> None:
    for name in swimstream.__all__:
        assert getattr(swimstream, name) is not None


def test_every_error_derives_from_the_one_root() -> None:
    errors = [getattr(swimstream, n) for n in swimstream.__all__ if n.endswith("Error")]
    assert all(issubclass(e, swimstream.SwimstreamError) for e in errors)


def test_testing_namespace_exports_the_harness() -> None:
    assert set(swimstream.testing.__all__) == {
        "FakeClock",
        "MemoryRecord",
        "MemorySink",
        "SentRecord",
        "open_plane",
    }
