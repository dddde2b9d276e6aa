"""The ``oddsuite`` command.

Each sub-command lives in ``oddsuite.commands.<name>`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (taking the parsed
args, returning an exit code). Only this module and the command modules print.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from oddsuite.errors import OddsuiteError, UserError  # noqa: F401 - UserError kept importable from here

#: sub-command modules under oddsuite.commands, in the order `--help` lists them
COMMANDS = [
    "generate",
    "search",
    "verify",
    "sign",
    "keygen",
    "evaluate",
    "score",
    "export",
    "train",
    "faults",
    "trace",
    "report",
    "check",
    "quantize",
    "compare",
    "lockstep",
    "latency",
    "demo",
    "convert",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oddsuite",
        description="Validate object detectors against an ODD: generate scene suites, evaluate, compare, inject faults, trace, report.",
    )
    from oddsuite import __version__

    p.add_argument("--version", action="version", version=f"oddsuite {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"oddsuite.commands.{name}").register(sub)
    for sp in sub.choices.values():  # -v after the sub-command too; SUPPRESS keeps a -v given before it
        sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug messages")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        return int(args.func(args) or 0)
    except OddsuiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`oddsuite verify DIR | head -1`): not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")  # no second BrokenPipeError when Python flushes at exit
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
