"""The command line: ``python -m picorr <command> ...``.

Each command lives in a module of this package exposing ``add_parser(subparsers)``; the
parser it adds sets ``run=callable(args) -> dict``. The dict is the command's result: with
``--json`` it is printed as the last line of stdout (one JSON object), otherwise as a
readable summary. Invalid input exits with status 2 and a one-line message that names the
parameter, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from ..jsonutil import plain

COMMANDS = ("steady", "theory", "groundstate", "sweep")


class CLIError(Exception):
    """An error to report as one line (``picorr: error: ...``) with exit status 2."""


def emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(plain(result)))
        return
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:>{width}} : {v}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(2, f"picorr: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m picorr", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    from ..models import ModelError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
    except (CLIError, ModelError) as exc:
        print(f"picorr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("picorr: interrupted", file=sys.stderr)
        return 130
    emit(result, getattr(args, "json", False))
    return 0
