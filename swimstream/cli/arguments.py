"""Argument types the command lines share: a count of devices or a rate of zero or
less would only fail later, deep inside, with a traceback instead of a usage line."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer above zero (argparse reports anything else as a usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not above zero")
    return value


def positive_float(text: str) -> float:
    """A finite number above zero (seconds, say)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number above zero")
    return value


def listen_address(text: str) -> str:
    """A ``host:port`` to listen on (``demo --web``).

    Checked here rather than left to the config it fills: there a wrong one was reported
    as ``web.listen``, a key the user never wrote, instead of the option they gave.
    """
    from swimstream.config import split_address

    try:
        split_address(text, example="127.0.0.1:9001")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
