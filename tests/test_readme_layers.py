"""The README's layer table says what each layer may import as tests/test_layers.py
enforces it: a layer allowed a new import there and not in the README (or the other way
round) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_layers import ALLOWED

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_table() -> dict[str, str]:
    """Layer -> its "may import" cell, from the README's Architecture table."""
    text = README.read_text().split("## Architecture", 1)[1].split("\n\n###", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| [^|]* \| ([^|]*) \|$", text, re.M)
    return {layer: cell.strip() for layer, cell in rows}


def may_import(layer: str, table: dict[str, str]) -> set[str]:
    """The layers a cell names: `x` and everything it may import, less those after
    "but" (up to an "and"), with those a parenthesis names left out of account; "all of
    the above" is every layer in a row above."""
    cell = re.sub(r"\([^)]*\)", "", table[layer])
    if cell == "nothing":
        return set()
    if cell == "all of the above":
        return set(list(table)[: list(table).index(layer)])
    named, _, rest = cell.partition(" but ")
    excluded, _, added = rest.partition(" and ")
    layers = set(re.findall(r"`(\w+)`", named + added))
    for base in re.findall(r"`(\w+)` and everything it may import", named):
        layers |= may_import(base, table)
    return layers - set(re.findall(r"`(\w+)`", excluded))


def test_the_readme_layer_table_matches_the_layer_rule() -> None:
    table = readme_table()
    assert set(table) == set(ALLOWED) - {"__main__"}, set(table) ^ set(ALLOWED)
    wrong = {
        layer: (sorted(may_import(layer, table)), sorted(allowed))
        for layer, allowed in ALLOWED.items()
        if layer in table and may_import(layer, table) != allowed
    }
    assert not wrong, wrong
