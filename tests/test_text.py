"""The wording helpers."""

from swimstream.text import counted


def test_counted_says_one_thing_in_the_singular_and_others_in_the_plural() -> None:
    assert counted(1, "partition") == "1 partition"
    assert counted(0, "partition") == "0 partitions"
    assert counted(3, "agent type") == "3 agent types"
    assert counted(2, "entry", "entries") == "2 entries"
    assert counted(1, "entry", "entries") == "1 entry"


def test_grouped_counts_have_thousands_separators() -> None:
    assert counted(12_000, "record", grouped=True) == "12,000 records"
    assert counted(1, "record", grouped=True) == "1 record"
    assert counted(12_000, "record") == "12000 records"
