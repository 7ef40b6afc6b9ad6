"""librdkafka's own table of its configuration properties, and the module generated from it.

librdkafka knows which client type each property applies to (the ``C/P`` column of its
CONFIGURATION.md: ``C`` consumer, ``P`` producer, ``*`` both) and prints that table with
``rd_kafka_conf_properties_show(FILE *)``. confluent-kafka does not expose it, so this
module calls it through ctypes on the very library confluent-kafka loaded, and renders
the consumer-only and producer-only names as :mod:`connectors.kafka.property_scopes`.

Why a generated, committed module rather than a ctypes call at every start: finding
the library is a matter of how the wheel was packed (``confluent_kafka.libs`` on Linux
and Windows, ``.dylibs`` on macOS, a system library for source builds), and a service
should not depend on that, nor on libc's ``fdopen``, to open a Kafka client. The table
changes only when confluent-kafka (pinned in constraints.txt) is upgraded, and the test
of :mod:`connectors.kafka.property_scopes` fails then until ``scripts/kafka-property-scopes``
is run again, so the upgrade's diff shows every property whose scope changed. A property
the installed librdkafka has and the table lacks is merely passed to every client, as
all settings were before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import confluent_kafka

Scope = Literal["C", "P", "*"]

_SCOPES: frozenset[str] = frozenset({"C", "P", "*"})


def _candidates() -> Iterator[str]:
    """Paths that may hold the librdkafka confluent-kafka uses, most likely first."""
    package = Path(confluent_kafka.__file__).parent
    for folder in (package.parent / "confluent_kafka.libs", package / ".dylibs"):
        if folder.is_dir():
            yield from sorted(str(path) for path in folder.glob("*rdkafka*"))
    system = ctypes.util.find_library("rdkafka")  # a build against the system library
    if system:
        yield system


def load_librdkafka() -> ctypes.CDLL | None:
    """The librdkafka confluent-kafka runs on, or None when it cannot be found or loaded.

    A candidate counts only when its version is the one confluent-kafka reports, so a
    stray system library is never read in place of the bundled one.
    """
    _, expected = confluent_kafka.libversion()
    for path in _candidates():
        try:
            library = ctypes.CDLL(path)
            library.rd_kafka_version.restype = ctypes.c_int
            library.rd_kafka_version.argtypes = []
            if library.rd_kafka_version() == expected:
                return library
        except (OSError, AttributeError):
            continue
    return None


def read_property_table(library: ctypes.CDLL) -> str | None:
    """The text ``rd_kafka_conf_properties_show`` prints, or None where libc has no
    ``fdopen`` to give it a ``FILE *`` (not a POSIX system)."""
    if os.name != "posix":
        return None
    libc = ctypes.CDLL(None)
    libc.fdopen.restype = ctypes.c_void_p
    libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
    libc.fclose.restype = ctypes.c_int
    libc.fclose.argtypes = [ctypes.c_void_p]
    show = library.rd_kafka_conf_properties_show
    show.restype = None
    show.argtypes = [ctypes.c_void_p]
    # A temporary file, not a pipe: the table (about 70 kB) would fill a pipe's buffer
    # before anyone read it.
    with tempfile.TemporaryFile() as output:
        stream = libc.fdopen(os.dup(output.fileno()), b"w")  # fclose closes the copy
        if not stream:
            return None
        show(stream)
        libc.fclose(stream)  # flushes librdkafka's writes into the file
        output.seek(0)
        return output.read().decode("utf-8")


def parse_scopes(table: str) -> dict[str, Scope]:
    """Each property's scope, from the global and the topic table alike.

    A name listed twice with different scopes (none is, in librdkafka 2.x) counts as
    ``*``: passing it to every client is what happened before scopes were known.
    """
    scopes: dict[str, Scope] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) < 3 or cells[1] not in _SCOPES or not cells[0]:
            continue  # a heading, the header row, its rule or the legend
        name, scope = cells[0], _scope(cells[1])
        scopes[name] = scope if scopes.get(name, scope) == scope else "*"
    return scopes


def _scope(cell: str) -> Scope:
    if cell == "C":
        return "C"
    return "P" if cell == "P" else "*"


def render_module(scopes: Mapping[str, Scope], version: str) -> str:
    """The source of :mod:`connectors.kafka.property_scopes`, as ruff formats it."""
    consumer = sorted(name for name, scope in scopes.items() if scope == "C")
    producer = sorted(name for name, scope in scopes.items() if scope == "P")
    return (
        '"""The librdkafka property names: every one, and those for consumers or producers only.\n'
        "\n"
        f"Generated by scripts/kafka-property-scopes from librdkafka {version}'s own table\n"
        "(:mod:`connectors.kafka.property_table` says why it is generated); do not edit.\n"
        "Global and topic properties alike; every other property applies to both.\n"
        '"""\n'
        "\n"
        "from typing import Final\n"
        "\n"
        f"CONSUMER_ONLY: Final[frozenset[str]] = {_frozenset(consumer)}\n"
        '"""Properties a producer (and so an admin client) ignores, with a CONFWARN."""\n'
        "\n"
        f"PRODUCER_ONLY: Final[frozenset[str]] = {_frozenset(producer)}\n"
        '"""Properties a consumer ignores, with a CONFWARN."""\n'
        "\n"
        f"KNOWN: Final[frozenset[str]] = {_frozenset(sorted(scopes))}\n"
        '"""Every property name, whatever its scope: the names a misspelt setting is\n'
        'matched against for a "did you mean" (librdkafka itself says only that it does\n'
        'not know the name)."""\n'
    )


def _frozenset(names: list[str]) -> str:
    lines = "".join(f'        "{name}",\n' for name in names)
    return f"frozenset(\n    {{\n{lines}    }}\n)"


def current_module() -> str | None:
    """The module the installed librdkafka's table renders, or None when the table
    cannot be read here (see :func:`load_librdkafka` and :func:`read_property_table`)."""
    library = load_librdkafka()
    if library is None:
        return None
    table = read_property_table(library)
    if table is None:
        return None
    return render_module(parse_scopes(table), confluent_kafka.libversion()[0])
