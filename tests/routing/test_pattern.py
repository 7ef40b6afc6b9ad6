from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimstream.errors import InvalidRouteError
from swimstream.routing import RoutePattern
from swimstream.routing.segments import is_plain
from tests.routing.strategies import param_values, patterns


def test_parse_records_fixed_segments_and_params_in_order() -> None:
    pattern = RoutePattern.parse("/region/:name/zone/:z")
    assert pattern.segments == ("region", None, "zone", None)
    assert pattern.params == ("name", "z")
    assert not pattern.is_static
    assert str(pattern) == "/region/:name/zone/:z"


def test_a_pattern_without_params_is_static() -> None:
    pattern = RoutePattern.parse("/world")
    assert pattern.is_static
    assert pattern.match("/world") == {}
    assert pattern.render({}) == "/world"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must start with '/'"),
        ("vehicle/:id", "must start with '/'"),
        ("/", "segment 1 of '/' is empty"),
        ("/vehicle/", "segment 2 of '/vehicle/' is empty"),
        ("/vehicle//:id", "segment 2 of '/vehicle//:id' is empty"),
        ("/:id/x/:id", "param ':id' appears twice"),
        ("/vehicle/:1st", "param name '1st' is not an identifier"),
        ("/vehicle/:", "param name '' is not an identifier"),
        ("/vehicle/:a-b", "param name 'a-b' is not an identifier"),
        ("/a b/:id", "'a b' holds characters a route cannot hold: ' '"),
        ("/a%2F/:id", "'a%2F' holds characters a route cannot hold: '%'"),
        ("/x/{key}", "holds characters a route cannot hold: '{' '}'"),
        ("/a:b", "'a:b' holds characters a route cannot hold: ':'"),
        ("/a/..", "'..' cannot be a segment"),
    ],
)
def test_bad_patterns_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidRouteError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RoutePattern.parse(text)


@pytest.mark.parametrize(
    "uri",
    [
        "/vehicle",
        "/vehicle/42/x",
        "/vehicles/42",
        "vehicle/42",
        "/vehicle/",
        "",
        "/vehicle/%FF",  # escapes that are not UTF-8 name no value
        "/vehicle/\ud800",  # nor does a lone surrogate (a callback's surrogateescape text)
        "/vehicle/%41\udcff",
    ],
)
def test_match_refuses_uris_of_another_shape(uri: str) -> None:
    assert RoutePattern.parse("/vehicle/:id").match(uri) is None


def test_match_decodes_params_and_render_quotes_them() -> None:
    pattern = RoutePattern.parse("/vehicle/:id")
    assert pattern.match("/vehicle/a%2Fb") == {"id": "a/b"}
    assert pattern.render({"id": "a/b"}) == "/vehicle/a%2Fb"
    assert pattern.render({"id": "ü x"}) == "/vehicle/%C3%BC%20x"
    assert pattern.match("/vehicle/%C3%BC%20x") == {"id": "ü x"}


def test_dot_segments_are_quoted_so_no_value_walks_out_of_its_segment() -> None:
    pattern = RoutePattern.parse("/vehicle/:id")
    assert pattern.render({"id": ".."}) == "/vehicle/%2E%2E"
    assert pattern.render({"id": "."}) == "/vehicle/%2E"
    assert pattern.render({"id": "..x"}) == "/vehicle/..x"
    assert pattern.match("/vehicle/%2E%2E") == {"id": ".."}


def test_render_ignores_extra_params_and_refuses_missing_or_empty_ones() -> None:
    pattern = RoutePattern.parse("/region/:name/zone/:z")
    assert pattern.render({"name": "west", "z": "3", "other": "x"}) == "/region/west/zone/3"
    with pytest.raises(InvalidRouteError, match="param 'z' is missing"):
        pattern.render({"name": "west"})
    with pytest.raises(InvalidRouteError, match="param 'name' is empty"):
        pattern.render({"name": "", "z": "3"})
    with pytest.raises(InvalidRouteError, match="param 'z' is not UTF-8 text"):
        pattern.render({"name": "west", "z": "\udcff"})


def test_precedence_puts_fixed_segments_first_from_the_left() -> None:
    fixed = RoutePattern.parse("/a/:x/c")
    param_first = RoutePattern.parse("/:p/b/c")
    assert fixed.precedence < param_first.precedence
    assert RoutePattern.parse("/a/b").precedence < RoutePattern.parse("/a/:x").precedence


def test_patterns_differing_only_in_param_names_have_one_shape() -> None:
    assert RoutePattern.parse("/a/:x").shape == RoutePattern.parse("/a/:y").shape
    assert RoutePattern.parse("/a/:x") != RoutePattern.parse("/a/:y")


@given(st.data())
def test_render_then_match_gives_the_params_back(data: st.DataObject) -> None:
    pattern = data.draw(patterns)
    params = {name: data.draw(param_values) for name in pattern.params}
    uri = pattern.render(params)
    assert pattern.match(uri) == params
    assert uri.count("/") == len(pattern.segments)
    segments = uri[1:].split("/")
    found = pattern.match_split(segments)
    assert found is not None
    plain = all(is_plain(segments[i]) for i, fixed in enumerate(pattern.segments) if fixed is None)
    assert found == (params, plain)


@given(st.data())
def test_render_is_canonical(data: st.DataObject) -> None:
    """Any spelling of a URI (here every param byte percent-escaped, in lower-case hex)
    matches the same params, and rendering them gives the one canonical spelling.

    An escaped param segment is never vouched for as canonical without that rendering, even
    when its escapes happen to be the canonical ones ("%19")."""
    pattern = data.draw(patterns)
    params = {name: data.draw(param_values) for name in pattern.params}
    uri = pattern.render(params)
    segments = uri[1:].split("/")
    escaped = [
        segment if fixed is not None else "".join(f"%{b:02x}" for b in params_of(segment))
        for segment, fixed in zip(segments, pattern.segments, strict=True)
    ]
    found = pattern.match_split(escaped)
    assert found is not None
    matched, canonical = found
    assert matched == params
    assert canonical == (not pattern.params)
    assert pattern.render(matched) == uri


def params_of(segment: str) -> bytes:
    """A rendered param segment's value, as UTF-8."""
    return unquote(segment).encode()
