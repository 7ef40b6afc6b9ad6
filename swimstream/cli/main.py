"""``swimstream``: run an app, check its config, or watch the demo.

The environment is read here, once, and handed to the config loader; the current
directory is put on ``sys.path`` so agent classes named ``module:Class`` import the way
they do in a test run (as uvicorn and gunicorn do).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Coroutine, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from swimstream.cli.arguments import listen_address, positive_float, positive_int
from swimstream.cli.exit_watch import EXIT_GRACE, exit_anyway_after
from swimstream.cli.help_text import COMMANDS, DESCRIPTION, EPILOG
from swimstream.errors import ConfigError, SwimstreamError
from swimstream.text import counted

log = logging.getLogger("swimstream.cli")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_USAGE = 2  # (as argparse exits on a bad command line)


def _version() -> str:
    try:
        return metadata.version("swimstream")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The command line, with a help text per command."""
    parser = argparse.ArgumentParser(
        prog="swimstream",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return subparsers.add_parser(
            name,
            help=summary,
            epilog=COMMANDS[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def with_logging(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--log-level",
            default="info",
            choices=["debug", "info", "warning", "error"],
            help="the least severe lines to print (default: info)",
        )
        sub.add_argument(
            "--log-format",
            choices=["text", "json"],
            default=None,
            help="text, or json (one object per line); default: text when stderr is a "
            "terminal, else json",
        )
        return sub

    run = with_logging(command("run", "run one instance of an app"))
    run.add_argument(
        "--config", "-c", required=True, type=Path, metavar="FILE", help="the app's YAML file"
    )
    run.description = (
        "Run one instance: consume the sources, run the agents, produce insights. A broker "
        "that does not answer yet is waited for (a line per try); SIGTERM or SIGINT drains "
        "and exits 0."
    )

    check = command("check", "validate a config (and import its agents)")
    check.add_argument(
        "--config", "-c", required=True, type=Path, metavar="FILE", help="the app's YAML file"
    )
    check.description = (
        "Load the config, substitute ${VARS}, import the agent classes and check the lanes "
        "its sources and sinks name and the broker.settings librdkafka knows, without "
        "connecting to anything. Exit 0 printing ok, "
        "or 2 listing each problem with its key."
    )

    inspect = command("inspect", "show what a local store holds")
    inspect.description = (
        "Show a local store (a .sqlite file, or the store.path directory): its shards, how "
        "far each reflects the changelog, and the agents with their lanes, links and timers."
    )
    inspect.add_argument(
        "--store",
        "-s",
        required=True,
        type=Path,
        metavar="PATH",
        help="a store's .sqlite file, or the store.path directory (each .sqlite in it)",
    )
    inspect.add_argument("--node", metavar="URI", help="show only the agent at this node URI")
    inspect.add_argument(
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="agents to list, 1 or more (default 20)",
    )

    demo = with_logging(command("demo", "embedded broker, simulator, dashboard"))
    demo.description = (
        "Start an embedded Kafka, a simulator of thousands of devices on cell towers, the "
        "towers app and its dashboard; print throughput and recent insights each second."
    )
    demo.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="stop after this long, with exit 0 (default: run until Ctrl-C)",
    )
    demo.add_argument(
        "--devices",
        type=positive_int,
        default=5000,
        metavar="N",
        help="simulated devices (default 5000)",
    )
    demo.add_argument(
        "--rate",
        type=positive_int,
        default=5000,
        metavar="PER_SECOND",
        help="readings per second, over all devices (default 5000)",
    )
    demo.add_argument(
        "--web",
        type=listen_address,
        default=None,
        metavar="HOST:PORT",
        help="dashboard address (default 127.0.0.1:9001, or any free port while another "
        "process holds that one; port 0 picks a free port)",
    )
    for sub in subparsers.choices.values():  # (raw text keeps the examples' columns)
        sub.description = textwrap.fill(sub.description or "", width=88)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``swimstream`` command; returns the exit status."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)  # (rather than only "the following arguments are required")
        return EXIT_USAGE
    args = parser.parse_args(argv)
    env = dict(os.environ)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if args.command == "check":
        return check(args.config, env)
    if args.command == "inspect":
        return inspect_store(args.store, args.node, args.limit)
    from swimstream.cli.logs import configure_logging

    # Until the service (or the demo) takes SIGTERM over, as SIGINT: the second or so of
    # imports and config loading before it did ended the process by the signal (exit
    # status 143, which a restart policy counts as a failure) instead of 0.
    signal.signal(signal.SIGTERM, _interrupted)
    log_format = configure_logging(args.log_level, args.log_format)
    try:
        if args.command == "run":
            return _run_async(_serve(args.config, env))
        if args.command == "demo":
            from swimstream.cli.demo import run_demo

            return _run_async(run_demo(args.duration, args.devices, args.rate, args.web))
    except ConfigError as exc:
        path = args.config if args.command == "run" else None
        if log_format == "json":
            _log_problems(path, exc)
        _print_problems(path, exc)
        return EXIT_BAD_CONFIG
    except SwimstreamError as exc:
        if log_format == "json":
            log.error("%s", exc)
        print(f"swimstream: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_FAILED


def _interrupted(signum: int, frame: object) -> None:
    """SIGTERM before the service handles it: stop as Ctrl-C does there (exit 0)."""
    raise KeyboardInterrupt


def check(path: Path, env: dict[str, str]) -> int:
    """``swimstream check``: print the problems of a config, or that it is fine."""
    from connectors.kafka.settings_check import librdkafka_problems
    from swimstream.config import check_config

    problems = check_config(path, env, librdkafka_problems)
    if problems:
        print(f"{path}: {counted(len(problems), 'problem')}", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    print(f"{path}: ok")
    return EXIT_OK


def inspect_store(path: Path, node: str | None, limit: int) -> int:
    """``swimstream inspect``: print what a local store holds."""
    from swimstream.store.inspect import describe, store_files

    try:
        files = store_files(path)
    except SwimstreamError as exc:
        print(f"swimstream: {exc}", file=sys.stderr)
        return EXIT_FAILED
    status = EXIT_OK
    for file in files:  # a damaged file does not hide the others
        try:
            for line in describe(file, node, limit):
                print(line)
        except SwimstreamError as exc:
            print(f"swimstream: {exc}", file=sys.stderr)
            status = EXIT_FAILED
    return status


async def _serve(path: Path, env: dict[str, str]) -> int:
    from connectors.factory import open_connectors
    from connectors.kafka.settings_check import librdkafka_problems
    from connectors.native_threads import left_behind
    from swimstream.cli.logs import log_context
    from swimstream.config import load_config_file
    from swimstream.service import Service, instance_id_for

    config = load_config_file(path, env, librdkafka_problems)
    log_context(app=config.app, instance=instance_id_for(config))
    service = Service(config, open_connectors)
    await service.run()
    status = EXIT_OK
    if service.failure is not None:
        print(f"swimstream: stopped after a failure: {service.failure}", file=sys.stderr)
        status = EXIT_FAILED
    # (See swimstream.cli.exit_watch, and connectors.native_threads for the exit at once.)
    exit_anyway_after(0.0 if left_behind() else EXIT_GRACE, status)
    return status


def _log_problems(path: Path | None, exc: ConfigError) -> None:
    """Each problem as an error record, its key path a field of its own: a JSON log
    pipeline sees why the instance exited (the lines printed after are plain text)."""
    for key, message in exc.problems:
        fields = {"config": str(path)} if path else {}
        if key and key != str(path):
            fields["key"] = key
        log.error("invalid configuration: %s", message, extra=fields)


def _print_problems(path: Path | None, exc: ConfigError) -> None:
    where = f"{path}: " if path else ""
    for key, message in exc.problems:
        named = key and key != str(path)  # (an unreadable file's problem is keyed by its path)
        print(f"swimstream: {where}{key + ': ' if named else ''}{message}", file=sys.stderr)


def _run_async(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (faster I/O), else asyncio's default loop.

    Only the import of uvloop is guarded: an ImportError from the app's own modules,
    raised while running, is the app's to report."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
