"""Whether a broker client's native work was left running when the service stopped.

A Pulsar close the broker does not answer by the drain's deadline is left behind (see
:func:`connectors.pulsar._client.close_within`). Its C++ thread calls back into Python
when the broker answers or the client's timeout ends, and a callback that comes while
the interpreter is shutting down crashed the process (SIGSEGV, exit -11, after
"stopped") once in six stops of a frozen broker on a loaded machine. So the process
that left one behind exits at once after the stop, without the interpreter's shutdown:
nothing is left to save by then (see :mod:`swimstream.cli.exit_watch`).
"""

from __future__ import annotations

import threading

_left_behind = threading.Event()


def leave_behind() -> None:
    """Note that a client's native work still runs and will call back."""
    _left_behind.set()


def left_behind() -> bool:
    """Whether any was left behind in this process."""
    return _left_behind.is_set()
