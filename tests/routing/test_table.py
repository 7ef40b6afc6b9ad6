import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimstream.errors import InvalidRouteError, NodeNotFoundError
from swimstream.routing import RoutePattern, RouteTable
from tests.routing.strategies import fixed_segments


def make_table(cache_size: int = 65536) -> RouteTable[str]:
    return RouteTable(
        [
            ("/vehicle/:id", "vehicle"),
            ("/vehicle/fleet", "fleet"),
            ("/tower/:id", "tower"),
            ("/region/:name/zone/:z", "zone"),
            ("/:kind/summary", "summary"),
            ("/world", "world"),
        ],
        cache_size=cache_size,
    )


@pytest.mark.parametrize("cache_size", [1, 65536])
@pytest.mark.parametrize(
    ("uri", "target", "params"),
    [
        ("/vehicle/42", "vehicle", {"id": "42"}),
        ("/vehicle/fleet", "fleet", {}),
        ("/tower/t-1", "tower", {"id": "t-1"}),
        ("/region/west/zone/3", "zone", {"name": "west", "z": "3"}),
        ("/road/summary", "summary", {"kind": "road"}),
        ("/tower/summary", "tower", {"id": "summary"}),  # the fixed first segment wins
        ("/world", "world", {}),
    ],
)
def test_lookup_finds_the_most_specific_pattern(
    cache_size: int, uri: str, target: str, params: dict[str, str]
) -> None:
    table = make_table(cache_size)
    for _ in range(2):  # the second time from the cache
        found = table.lookup(uri)
        assert found is not None
        assert (found.target, found.params, found.uri) == (target, params, uri)


@pytest.mark.parametrize("uri", ["/nowhere", "/vehicle", "/vehicle/1/2", "vehicle/1", "", "/"])
def test_lookup_of_an_unknown_uri_is_none(uri: str) -> None:
    assert make_table().lookup(uri) is None


def test_resolve_names_the_uri_and_the_routes() -> None:
    table = RouteTable([("/vehicle/:id", "vehicle")])
    with pytest.raises(
        NodeNotFoundError, match=r"no route matches '/car/1' \(routes: /vehicle/:id\)"
    ):
        table.resolve("/car/1")
    assert table.resolve("/vehicle/1").target == "vehicle"
    # Text with a lone surrogate has no UTF-8 spelling: no agent is named so, and saying
    # so is the answer (its canonical spelling raised UnicodeEncodeError).
    with pytest.raises(NodeNotFoundError, match="no route matches"):
        table.resolve("/vehicle/\udcff")


def test_a_pattern_of_a_registered_shape_is_refused() -> None:
    table = make_table()
    with pytest.raises(InvalidRouteError, match="'/vehicle/:vid' overlaps '/vehicle/:id'"):
        table.add("/vehicle/:vid", "other")
    assert len(table) == 6


def test_lookup_gives_the_canonical_spelling_of_the_uri() -> None:
    table = make_table()
    found = table.lookup("/vehicle/a:b")
    assert found is not None
    assert found.params == {"id": "a:b"}
    assert found.uri == "/vehicle/a%3Ab"
    again = table.lookup("/vehicle/%61")
    assert again is not None
    assert again.uri == "/vehicle/a"


def test_an_escaped_spelling_of_a_fixed_segment_reaches_the_route_that_owns_it() -> None:
    """``/vehicle/fl%65et`` is ``/vehicle/fleet`` spelled otherwise. It matched
    ``/vehicle/:id`` with id ``fleet``, whose canonical URI is the fleet's: a vehicle agent
    then took the fleet agent's URI, and the fleet's commands failed on it."""
    table = make_table()
    found = table.lookup("/vehicle/fl%65et")
    assert found is not None
    assert (found.target, found.params, found.uri) == ("fleet", {}, "/vehicle/fleet")


@given(st.lists(st.sampled_from(["a", "b", "%61", "%62", "c"]), min_size=1, max_size=3))
def test_a_match_s_canonical_uri_matches_the_same_route(uri_segments: list[str]) -> None:
    table: RouteTable[str] = RouteTable(
        [
            ("/a/:x", "a-x"),
            ("/a/a", "a-a"),
            ("/:x/b", "x-b"),
            ("/b/:x/:y", "b-x-y"),
            ("/b/a/a", "b-a-a"),
        ]
    )
    found = table.lookup("/" + "/".join(uri_segments))
    if found is not None:
        again = table.lookup(found.uri)
        assert again is not None and (again.target, again.uri) == (found.target, found.uri)


def test_adding_a_pattern_forgets_cached_answers() -> None:
    table = RouteTable([("/vehicle/:id", "vehicle")])
    assert table.lookup("/tower/1") is None
    table.add("/tower/:id", "tower")
    found = table.lookup("/tower/1")
    assert found is not None
    assert found.target == "tower"


def test_get_finds_a_target_by_shape_and_iteration_keeps_the_order_of_adding() -> None:
    table = make_table()
    assert table.get("/vehicle/:other") == "vehicle"
    assert table.get(RoutePattern.parse("/nowhere/:x")) is None
    assert [target for _, target in table] == [
        "vehicle",
        "fleet",
        "tower",
        "zone",
        "summary",
        "world",
    ]


# Segments drawn from a tiny alphabet, so that random URIs often match several patterns.
small_fixed = st.sampled_from(["a", "b"])
shapes = st.lists(st.one_of(small_fixed, st.just(None)), min_size=1, max_size=3)


@given(
    st.lists(shapes, min_size=1, max_size=8, unique_by=tuple),
    st.lists(st.one_of(small_fixed, fixed_segments), min_size=1, max_size=3),
)
def test_lookup_agrees_with_trying_every_pattern(
    shape_list: list[list[str | None]], uri_segments: list[str]
) -> None:
    table: RouteTable[int] = RouteTable()
    for index, shape in enumerate(shape_list):
        text = "/" + "/".join(s if s is not None else f":p{i}" for i, s in enumerate(shape))
        table.add(text, index)
    uri = "/" + "/".join(uri_segments)
    matching = [(pattern, target) for pattern, target in table if pattern.match(uri) is not None]
    found = table.lookup(uri)
    if not matching:
        assert found is None
    else:
        best = min(matching, key=lambda item: item[0].precedence)
        assert found is not None
        assert found.target == best[1]
