"""One live instance per instance id and broker on a host (see instance_lock.py).

The lock is held across processes, so each test takes it in a child process of its
own: a real second process is what the lock must refuse, and a killed one must leave
it free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from swimstream.errors import ConfigError
from swimstream.service.instance_lock import InstanceLock, _still_named

HOLD = """
import sys, time
from pathlib import Path
from swimstream.service.instance_lock import InstanceLock, _still_named
InstanceLock("app", "app-1", "127.0.0.1:9092", Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(60)
"""


def holder(directory: Path) -> subprocess.Popen[str]:
    """A process that holds the lock of ``app-1`` on 127.0.0.1:9092 until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_with_the_id_is_refused_naming_the_key_and_the_holder(
    tmp_path: Path,
) -> None:
    process = holder(tmp_path)
    try:
        with pytest.raises(ConfigError) as refused:
            InstanceLock("app", "app-1", "127.0.0.1:9092", tmp_path).acquire()
        ((key, message),) = refused.value.problems
        assert key == "mesh.instance_id"
        assert f"pid {process.pid}" in message and "'app-1'" in message
        # Another id, another broker: other worlds, not refused.
        for other in (
            InstanceLock("app", "app-2", "127.0.0.1:9092", tmp_path),
            InstanceLock("app", "app-1", "127.0.0.1:19092", tmp_path),
        ):
            other.acquire()
            other.release()
    finally:
        process.kill()
        process.wait()


def test_a_killed_holder_leaves_the_id_free_and_a_release_frees_it(tmp_path: Path) -> None:
    process = holder(tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    lock = InstanceLock("app", "app-1", "127.0.0.1:9092", tmp_path)
    lock.acquire()  # a restart after a crash takes its id back at once
    lock.release()
    again = InstanceLock("app", "app-1", "127.0.0.1:9092", tmp_path)
    again.acquire()
    again.release()


def test_without_a_broker_address_nothing_is_locked(tmp_path: Path) -> None:
    first = InstanceLock("app", "app-1", "", tmp_path)
    first.acquire()
    second = InstanceLock("app", "app-1", "", tmp_path)
    second.acquire()
    assert not list(tmp_path.iterdir())
    first.release()
    second.release()


def test_a_lock_that_cannot_be_taken_is_a_warning_not_a_failed_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another user's lock directory, or a read-only one, must not stop the instance."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    InstanceLock("app", "app-1", "127.0.0.1:9092", blocked).acquire()
    assert "cannot take the lock of instance id 'app-1'" in caplog.text


def test_a_release_removes_its_file_and_the_id_can_be_taken_again(tmp_path: Path) -> None:
    """(Each file stayed: the embedded broker's address is new at every run, so every
    demo and test run left one more in the host's lock directory, 315 of them here.)"""
    lock = InstanceLock("app", "app-1", "127.0.0.1:9092", tmp_path)
    lock.acquire()
    assert [p.name for p in tmp_path.iterdir()] == [lock.path.name]
    lock.release()
    assert list(tmp_path.iterdir()) == []
    again = InstanceLock("app", "app-1", "127.0.0.1:9092", tmp_path)
    again.acquire()
    assert again.path.exists()
    again.release()


def test_a_file_removed_under_an_opener_is_not_what_it_locks(tmp_path: Path) -> None:
    """A process that opened the file just before its holder's release removed it would
    lock a file nobody else opens, and a third process could then take the id too: the
    check after the lock sees it and opens the path again."""
    path = tmp_path / "app.lock"
    path.write_text("")
    fd = os.open(path, os.O_RDWR)
    try:
        assert _still_named(fd, path)
        path.unlink()  # the holder's release
        assert not _still_named(fd, path)
        path.write_text("")  # the next holder's file
        assert not _still_named(fd, path)
    finally:
        os.close(fd)


def test_ids_too_long_for_a_file_name_are_locked_all_the_same(tmp_path: Path) -> None:
    """An app name and an id of up to 200 characters each are valid, and their lock's
    file name was longer than a file system takes: the lock was skipped with a
    warning, and a second instance of the id was let in."""
    app = "a" * 150
    first = InstanceLock(app, f"{app}-host", "127.0.0.1:9092", tmp_path)
    first.acquire()
    try:
        with pytest.raises(ConfigError) as refused:
            InstanceLock(app, f"{app}-host", "127.0.0.1:9092", tmp_path).acquire()
        assert refused.value.problems[0][0] == "mesh.instance_id"
        other = InstanceLock(app, f"{app}-other", "127.0.0.1:9092", tmp_path)
        other.acquire()  # (a lock of its own)
        other.release()
    finally:
        first.release()
