"""One live instance per instance id on a host: a second one is refused at its start.

Two live instances of one ``mesh.instance_id`` with durable state lose state. Under
``at-least-once`` nothing fences the older one: the newer one's first checkpoint says
that every checkpoint of its id numbered between the one it restored and its own first
was cut short by a crash (what a restart after a crash needs), so every later restore
skips the checkpoints the older one still commits, while the offsets it committed for
them stand: their records are never read again. Under ``exactly-once`` the broker fences
the older one's transactions, and it stops. The default id is ``<app>-<host name>``, so
the likely way to get two is two processes on one host left to the default; that is
the case this lock catches. Instances on different hosts need ids of their own (the
README says so); nothing here can see them.

The lock is an advisory ``flock`` on a file in the host's temporary directory, named
after the app, the id and the broker's address (the embedded broker of each run is a
world of its own, and so are two clusters), holding the owner's pid for the message.
The kernel releases it when its process ends, however it ends, so a crash leaves
nothing to clean up but a small file; a release removes its file. With no broker address
known (``cluster`` empty) nothing is locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from swimstream.errors import ConfigError

log = logging.getLogger("swimstream.service")

LOCK_DIRECTORY = Path(tempfile.gettempdir()) / "swimstream-instances"
"""Where the locks live: one directory per host, whatever each instance's working
directory and store path."""


NAME_MAX = 255
"""The longest file name most file systems take (Linux's ``NAME_MAX``)."""


class InstanceLock:
    """Held while an instance of ``app`` with ``instance_id`` runs on this host."""

    def __init__(
        self, app: str, instance_id: str, cluster: str, directory: Path = LOCK_DIRECTORY
    ) -> None:
        where = hashlib.sha256(cluster.encode()).hexdigest()[:16]
        name = f"{app}.{instance_id}.{where}.lock"
        if len(name.encode()) > NAME_MAX:
            # Names of up to 200 characters each (the default id repeats the app's) made
            # a file name the system refuses: the lock was skipped with a warning, and
            # a second instance of the id was not refused.
            named = hashlib.sha256(f"{app}\0{instance_id}".encode()).hexdigest()[:32]
            name = f"{app[:100]}.{named}.{where}.lock"
        self.path = directory / name
        self._instance_id = instance_id
        self._cluster = cluster
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; ConfigError naming ``mesh.instance_id`` when another live
        process of this host holds it."""
        if not self._cluster:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # another user's lock directory, a read-only /tmp
            log.warning(
                "cannot take the lock of instance id %r (%s): a second instance with this "
                "id on this host would not be refused",
                self._instance_id,
                exc,
            )
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _still_named(fd, self.path):  # its holder removed it as we opened it
                os.close(fd)
                self.acquire()
                return
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise ConfigError(
                problems=[
                    (
                        "mesh.instance_id",
                        f"another instance with id {self._instance_id!r} runs on this host,"
                        " on the same broker"
                        f"{f' (pid {holder})' if holder else ''}: each instance needs an "
                        "id of its own (two of one id lose checkpointed state)",
                    )
                ]
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (at the instance's close; a process that ends lets it go too)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # (while held: see _still_named)
                self.path.unlink()
            os.close(fd)


def _still_named(fd: int, path: Path) -> bool:
    """Whether the file locked as ``fd`` is still the one at ``path``: a release removes
    its file while it holds the lock (the embedded broker's address is new at every run,
    so each demo left a file behind), and a process that opened it just before then
    locks a file no one else will open; it opens the path again instead."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _read(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    return ""
