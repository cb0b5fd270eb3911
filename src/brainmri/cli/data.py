"""``brainmri data ...``: dataset tools. Each tool module exposes ``register(subparsers)``."""
from __future__ import annotations

import importlib

TOOL_MODULES = ("brainmri.cli.data_audit", "brainmri.cli.data_tools")


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="dataset tools: audit, export-npz, synth", description="Dataset tools.")
    sub = parser.add_subparsers(dest="data_command", metavar="TOOL")
    for name in TOOL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
