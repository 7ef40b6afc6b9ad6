"""``swimstream inspect`` on a store in a directory that cannot be written.

A store in WAL mode is read through its ``-shm`` file, which SQLite makes beside it even
to read, so a store on a disk mounted read-only (a failed machine's, looked at
elsewhere) was "not a readable swimstream store: unable to open database file".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from swimstream.errors import StoreError
from swimstream.store.inspect import describe
from tests.store.test_sqlite import written_store


@contextlib.contextmanager
def read_only_copy(tmp_path: Path, *files: Path) -> Iterator[Path]:
    """A directory holding copies of ``files``, mounted read-only (a tmpfs)."""
    target = tmp_path / "mounted"
    target.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        for file in files:
            shutil.copy(file, target / file.name)
        subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)  # (held open)


def test_a_closed_store_in_a_read_only_directory_is_listed(tmp_path: Path) -> None:
    written_store(tmp_path / "s.sqlite").close()
    with read_only_copy(tmp_path, tmp_path / "s.sqlite") as mounted:
        lines = list(describe(mounted / "s.sqlite"))
    assert lines[0] == f"{mounted / 's.sqlite'}: 2 agents", lines
    assert lines[1].startswith("  shard 1: changelog offset 42, checkpoint 7"), lines
    assert any(line.startswith("  /device/1  ") and "readings=2" in line for line in lines)


def test_a_store_with_a_write_ahead_log_there_says_how_to_read_it(tmp_path: Path) -> None:
    """Its log holds part of the store (an instance killed): read without it, the
    listing would be wrong, so the message says to copy both files."""
    written = tmp_path / "written"
    written.mkdir()
    script = (
        "import os, pathlib, sys; sys.path.insert(0, sys.argv[2]);"
        "from tests.store.test_sqlite import written_store;"
        "written_store(pathlib.Path(sys.argv[1])); os._exit(0)"  # killed: its log stays
    )
    repo = str(Path(__file__).resolve().parents[2])
    subprocess.run([sys.executable, "-c", script, str(written / "s.sqlite"), repo], check=True)
    wal = written / "s.sqlite-wal"
    assert wal.stat().st_size > 0
    with read_only_copy(tmp_path, written / "s.sqlite", wal) as mounted:
        assert not os.access(mounted, os.W_OK)
        with pytest.raises(StoreError, match=r"copy s\.sqlite and s\.sqlite-wal into a writable"):
            list(describe(mounted / "s.sqlite"))
