"""The e2e bench's rounds: the table shows each contender's typical round, not a lucky one."""

from __future__ import annotations

from bench.e2e_bench import medians, rounds_sentence
from bench.peers.harness import Result


def run(name: str, rate: float) -> Result:
    """A row that read 1,000 records in ``1000 / rate`` seconds."""
    return Result(name, "client", first=10.0, done=10.0 + 1_000 / rate, records=1_000)


def test_each_row_is_the_median_round_in_the_order_of_the_table() -> None:
    rounds = [
        [run("raw", 900_000), run("swimstream", 40_000)],
        [run("raw", 1_000_000), run("swimstream", 60_000)],
        [run("raw", 600_000), run("swimstream", 50_000)],
    ]
    chosen = medians(rounds)
    assert [r.name for r in chosen] == ["raw", "swimstream"]
    assert [round(r.steady_rate) for r in chosen] == [900_000, 50_000]


def test_a_failed_round_is_left_out_and_a_contender_that_never_ran_shows_its_failure() -> None:
    rounds = [
        [run("quix", 30_000), Result("faust", "", failure="install failed")],
        [Result("quix", "", failure="timed out"), Result("faust", "", failure="install failed")],
    ]
    quix, faust = medians(rounds)
    assert (quix.failure, round(quix.steady_rate)) == ("", 30_000)
    assert faust.failure == "install failed"
    sentence = rounds_sentence(rounds)
    assert "median of 2 rounds" in sentence
    assert "quix 30,000, failed" in sentence


def test_one_round_needs_no_sentence() -> None:
    assert rounds_sentence([[run("raw", 1.0)]]) == ""
