"""Hypothesis strategies for route patterns, params and payloads."""

from hypothesis import strategies as st

from swimstream.routing import RoutePattern

# Any non-empty text a param or payload field may hold (no lone surrogates: not UTF-8).
param_values = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)

fixed_segments = st.text(st.sampled_from("abcxyz0189-_.~@!"), min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)


@st.composite
def _patterns(draw: st.DrawFn) -> RoutePattern:
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=5))
    names = iter(draw(st.permutations(["id", "name", "z", "zone", "x1", "_p"])))
    segments = [":" + next(names) if is_param else draw(fixed_segments) for is_param in kinds]
    return RoutePattern.parse("/" + "/".join(segments))


patterns = _patterns()
