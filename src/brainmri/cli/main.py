"""``brainmri`` command line: ``main(argv)`` takes a list, so every subcommand is testable
in-process. Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
a parser and sets ``func(args) -> int`` (the exit code).

Errors the user can cause raise :class:`~brainmri.errors.BrainMRIError`; they are printed as one
line naming the file and the problem, with exit code 2; so are operating-system errors (a full disk,
a read-only folder), which are the environment, not a bug. Anything else is a bug: one line, exit 3,
and the traceback only with ``--debug``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

import brainmri
from brainmri.errors import BrainMRIError

# (module, attribute): modules that register top-level subcommands, in --help order.
SUBCOMMAND_MODULES = (
    "brainmri.cli.demo",
    "brainmri.cli.data",
    "brainmri.cli.train",
    "brainmri.cli.evaluate",
    "brainmri.cli.calibrate",
    "brainmri.cli.explain",
    "brainmri.cli.compare",
    "brainmri.cli.predict",
    "brainmri.cli.export",
    "brainmri.cli.serve",
    "brainmri.cli.info",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainmri",
        description=f"Brain MRI classification, evaluation, explanation and serving. {brainmri.DISCLAIMER}",
    )
    parser.add_argument("--version", action="version", version=f"brainmri {brainmri.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="less logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subcommand not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:  # a Ctrl-C while the subcommands' modules load is one line too, not a traceback
        parser = build_parser()
    except KeyboardInterrupt:
        print("brainmri: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.debug else "%(message)s",
    )
    if not args.debug:
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except BrainMRIError as exc:
        print(f"brainmri {args.command}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))  # e.g. an interrupted training run: 130 / 143
    except KeyboardInterrupt:
        print(f"brainmri {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `brainmri info --json | head`: the reader left; not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep the interpreter's final flush quiet
        except OSError:
            pass
        return 0
    except OSError as exc:  # the environment (disk full, read-only place, a folder in the way), not a bug
        where = exc.filename or "(unknown path)"
        print(f"brainmri {args.command}: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: keep the user's screen clean unless asked
        if args.debug or os.environ.get("BRAINMRI_DEBUG"):
            raise
        print(f"brainmri {args.command}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
