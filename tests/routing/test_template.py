import math
import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimstream.errors import InvalidRouteError, RecordRoutingError
from swimstream.routing import Placeholder, RoutePattern, RouteTemplate
from tests.routing.strategies import param_values


def render(
    text: str,
    *,
    key: bytes | None = b"k1",
    payload: Any = None,
    headers: dict[str, bytes] | None = None,
    topic: str = "positions",
    partition: int = 3,
) -> str:
    template = RouteTemplate.parse(text)
    return template.render(key, payload, headers or {}, topic, partition)


def test_parse_lists_the_placeholders() -> None:
    template = RouteTemplate.parse("/r/{header.region}/v-{payload.a.b}/{key}")
    assert template.placeholders == (
        Placeholder("header", ("region",)),
        Placeholder("payload", ("a", "b")),
        Placeholder("key"),
    )
    assert [str(p) for p in template.placeholders] == ["{header.region}", "{payload.a.b}", "{key}"]
    assert template.roots == {"header", "payload", "key"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/vehicle/{payloud.id}", "unknown placeholder {payloud.id}; a placeholder is {key},"),
        ("/vehicle/{keys}", "unknown placeholder {keys}"),
        ("/vehicle/{key.x}", "unknown placeholder {key.x}"),
        ("/x/{header}", "placeholder {header} needs a header name"),
        ("/x/{header.}", "placeholder {header.} needs a header name"),
        ("/x/{payload.a..b}", "bad field name '' in placeholder {payload.a..b}"),
        ("/x/{payload.a b}", "bad field name 'a b'"),
        ("/x/{key", "unclosed '{' in '{key'"),
        ("/x/{a{key}", "unclosed '{' in '{a{key}'"),
        ("/x/key}", "unmatched '}' in 'key}'"),
        ("/x/}{key}", "unmatched '}'"),
        ("/x/{}", "empty placeholder {}"),
        ("/x y/{key}", "'x y' holds characters a route cannot hold"),
        ("x/{key}", "must start with '/'"),
        ("/x//{key}", "segment 2 of '/x//{key}' is empty"),
    ],
)
def test_bad_templates_are_refused_naming_the_placeholder(text: str, message: str) -> None:
    with pytest.raises(InvalidRouteError, match=re.escape(message)):
        RouteTemplate.parse(text)


def test_render_reads_each_part_of_the_record() -> None:
    payload = {"vehicle": {"id": "v1", "n": 7}, "items": [{"id": "first"}], "ok": True}
    assert render("/vehicle/{key}") == "/vehicle/k1"
    assert render("/vehicle/{payload.vehicle.id}", payload=payload) == "/vehicle/v1"
    assert render("/vehicle/{payload.vehicle.n}", payload=payload) == "/vehicle/7"
    assert render("/x/{payload.ok}", payload=payload) == "/x/true"
    assert render("/x/{payload.items.0.id}", payload=payload) == "/x/first"
    assert render("/x/{payload}", payload=b"raw-id") == "/x/raw-id"
    assert render("/x/{payload}", payload=1.5) == "/x/1.5"
    assert render("/x/{header.region}", headers={"region": b"west"}) == "/x/west"
    assert render("/{topic}/{partition}") == "/positions/3"
    assert render("/world") == "/world"
    assert render("/r/{header.r}-{key}/z", headers={"r": b"w"}) == "/r/w-k1/z"


def test_rendered_values_cannot_escape_their_segment() -> None:
    assert render("/vehicle/{key}", key=b"../admin") == "/vehicle/..%2Fadmin"
    assert render("/vehicle/{key}", key=b"..") == "/vehicle/%2E%2E"
    assert render("/vehicle/{payload.id}", payload={"id": "a/b?c#d"}) == "/vehicle/a%2Fb%3Fc%23d"
    assert render("/t/{topic}", topic="persistent://public/default/x") == (
        "/t/persistent%3A%2F%2Fpublic%2Fdefault%2Fx"
    )


@pytest.mark.parametrize(
    ("text", "record", "reason"),
    [
        ("/v/{key}", {"key": None}, "record has no key"),
        ("/v/{key}", {"key": b""}, "record key is empty"),
        ("/v/{key}", {"key": b"\xff\xfe"}, "record key is not UTF-8 text"),
        ("/v/{payload.vehicle_id}", {"payload": {}}, "payload field 'vehicle_id' is missing"),
        ("/v/{payload.a.b}", {"payload": {"a": {}}}, "payload field 'a.b' is missing"),
        (
            "/v/{payload.a.b}",
            {"payload": {"a": "text"}},
            "payload field 'a.b' is missing ('a' is a string)",
        ),
        (
            "/v/{payload.a.5}",
            {"payload": {"a": [1]}},
            "payload field 'a.5' is missing (the list is shorter)",
        ),
        ("/v/{payload.a}", {"payload": {"a": None}}, "payload field 'a' is null"),
        ("/v/{payload.a}", {"payload": {"a": ""}}, "payload field 'a' is empty"),
        (
            "/v/{payload.a}",
            {"payload": {"a": {"b": 1}}},
            "payload field 'a' is not a scalar (it is an object)",
        ),
        (
            "/v/{payload.a}",
            {"payload": {"a": [1]}},
            "payload field 'a' is not a scalar (it is a list)",
        ),
        ("/v/{payload.a}", {"payload": {"a": math.inf}}, "payload field 'a' is inf, not a usable"),
        (  # {"a": 18446744073709551616} as orjson reads it: ids a unit apart would collide
            "/v/{payload.a}",
            {"payload": orjson.loads(b'{"a": 18446744073709551616}')},
            "payload field 'a' is 1.8446744073709552e+19, a number too large to name an agent",
        ),
        ("/v/{payload.a}", {"payload": [1, 2]}, "payload is not a JSON object (it is a list)"),
        ("/v/{payload.a}", {"payload": b"raw"}, "payload is not a JSON object (it is bytes)"),
        ("/v/{payload}", {"payload": {"a": 1}}, "payload is not a scalar (it is an object)"),
        ("/v/{header.region}", {"headers": {}}, "header 'region' is missing"),
        ("/v/{header.region}", {"headers": {"region": None}}, "header 'region' is null"),
    ],
)
def test_unroutable_records_raise_with_the_reason(
    text: str, record: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RecordRoutingError, match=re.escape(reason)):
        render(text, **record)


def test_key_param_finds_the_param_that_holds_the_key() -> None:
    vehicle = RoutePattern.parse("/vehicle/:id")
    assert RouteTemplate.parse("/vehicle/{key}").key_param(vehicle) == "id"
    assert RouteTemplate.parse("/vehicle/{payload.id}").key_param(vehicle) is None
    assert RouteTemplate.parse("/vehicle/v-{key}").key_param(vehicle) is None
    assert RouteTemplate.parse("/tower/{key}").key_param(vehicle) is None


scalars = st.one_of(
    param_values,
    st.integers(),
    st.booleans(),
    # (from 2**53 on, floats are refused: they cannot tell neighbouring ids apart)
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: abs(x) < 2.0**53),
)


@given(
    outer=st.from_regex(r"[A-Za-z0-9_\-]{1,5}", fullmatch=True),
    inner=st.sampled_from(["id", "vehicle_id", "x-1"]),
    value=scalars,
    noise=st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)
def test_rendering_a_payload_field_then_matching_gives_the_value_back(
    outer: str, inner: str, value: str | int | bool | float, noise: dict[str, int]
) -> None:
    template = RouteTemplate.parse(f"/vehicle/{{payload.{outer}.{inner}}}")
    payload = {**noise, outer: {inner: value, "other": 1}}
    uri = template.render(None, payload, {}, "t", 0)
    params = RoutePattern.parse("/vehicle/:id").match(uri)
    expected = (
        ("true" if value else "false")
        if isinstance(value, bool)
        else (str(int(value)) if value.is_integer() else repr(value))
        if isinstance(value, float)
        else str(value)
    )
    assert params == {"id": expected}


@given(
    number=st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    placeholder=st.sampled_from(["{payload.id}", "{payload}"]),
)
def test_an_integer_and_the_same_number_as_a_float_route_to_one_agent(
    number: int, placeholder: str
) -> None:
    """JSON does not tell 1 from 1.0: a producer writing ids as floats must reach the
    agents the integers name, not a second agent per id."""
    template = RouteTemplate.parse(f"/device/{placeholder}")

    def uri(value: int | float) -> str:
        payload = {"id": value} if placeholder == "{payload.id}" else value
        return template.render(None, payload, {}, "t", 0)

    assert uri(float(number)) == uri(number) == f"/device/{number}"


@pytest.mark.parametrize(
    ("document", "uri"),
    [
        (b'{"id": -0.0}', "/device/0"),
        (b'{"id": 0.0}', "/device/0"),
        (b'{"id": 1e3}', "/device/1000"),
        (b'{"id": 1.5}', "/device/1.5"),
        (b'{"id": -2.25}', "/device/-2.25"),
        (b'{"id": 1e-7}', "/device/1e-07"),
    ],
)
def test_a_float_id_names_the_agent_of_its_integer_only_when_it_is_whole(
    document: bytes, uri: str
) -> None:
    assert render("/device/{payload.id}", payload=orjson.loads(document)) == uri


@given(key=st.binary(min_size=1, max_size=16), region=param_values)
def test_rendering_keys_and_headers_then_matching_gives_them_back(key: bytes, region: str) -> None:
    template = RouteTemplate.parse("/region/{header.region}/vehicle/{key}")
    pattern = RoutePattern.parse("/region/:region/vehicle/:id")
    try:
        text_key = key.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(RecordRoutingError, match="not UTF-8"):
            template.render(key, None, {"region": region.encode()}, "t", 0)
        return
    uri = template.render(key, None, {"region": region.encode()}, "t", 0)
    assert pattern.match(uri) == {"region": region, "id": text_key}


@given(
    before=st.sampled_from(["", ".", "x", "a+", "@"]),
    between=st.sampled_from(["", ".", "-", "="]),
    key=st.sampled_from([".", "..", "a", "a.b", "+", "~", "é"]) | param_values,
    field=st.sampled_from([".", "..", "b", "/", "!"]) | param_values,
)
def test_a_segment_placeholders_share_is_spelt_as_the_route_table_spells_it(
    before: str, between: str, key: str, field: str
) -> None:
    """A router whose URI is not the agent's own spelling waits for room in no agent's
    mailbox (``x{key}`` with the key ``.`` gave ``/d/x%2E``, the agent is ``/d/x.``)."""
    template = RouteTemplate.parse(f"/d/{before}{{key}}{between}{{payload.f}}/z")
    uri = template.render(key.encode(), {"f": field}, {}, "t", 0)
    pattern = RoutePattern.parse("/d/:id/z")
    assert pattern.match(uri) == {"id": f"{before}{key}{between}{field}"}
    assert pattern.render({"id": f"{before}{key}{between}{field}"}) == uri


@pytest.mark.parametrize(
    ("text", "key", "uri"),
    [
        ("/d/x{key}", b".", "/d/x."),
        ("/d/{key}.", b".", "/d/%2E%2E"),
        ("/d/{key}{key}", b".", "/d/%2E%2E"),
        ("/d/{key}+", b"k", "/d/k%2B"),
        ("/d/{key}-{key}", b"a/b", "/d/a%2Fb-a%2Fb"),
    ],
)
def test_a_shared_segment_is_quoted_whole(text: str, key: bytes, uri: str) -> None:
    assert render(text, key=key) == uri
