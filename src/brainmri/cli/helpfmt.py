"""One ``--help`` style for every subcommand: argparse's "(default: X)" where the default is a
real value, and nothing where it is ``None`` or ``False`` (resolved later, or a plain switch) or
where the help text already says its default."""
from __future__ import annotations

import argparse


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return text
        return super()._get_help_string(action)
