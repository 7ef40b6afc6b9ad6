"""The command line: ``swimstream run | check | demo``."""

from swimstream.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
