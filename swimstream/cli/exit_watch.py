"""The process ends once the service has stopped, whatever native threads still wait.

A broker client's threads may still be inside a call the broker never answers (a Pulsar
producer being made while the broker is frozen, a close left behind at the drain's
deadline). ``asyncio.run`` waits for its executor's threads as it ends, and the client's
own destructors join theirs: the process that logged "stopped" then hung there, past the
10 s ``docker stop`` allows, to be killed without its exit status. Once the service has
stopped, nothing is left to save: after :data:`EXIT_GRACE` seconds the process exits
with the status it was going to exit with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

log = logging.getLogger("swimstream.cli")

EXIT_GRACE = 1.5
"""Seconds the end of the process may take after the service stopped."""


def exit_anyway_after(seconds: float, status: int) -> threading.Timer:
    """Exit with ``status`` in ``seconds`` unless the process has ended by then."""

    def exit_now() -> None:
        if seconds:
            log.warning(
                "exiting %.1f s after the stop without waiting further for the broker "
                "client's threads",
                seconds,
            )
        else:
            log.warning(
                "exiting at once after the stop: a broker client's close was left behind, "
                "and its threads must not call back while the interpreter shuts down"
            )
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # (a closed pipe: exit all the same)
                stream.flush()
        os._exit(status)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True  # (a process that ends by itself does not wait for it)
    timer.start()
    return timer
