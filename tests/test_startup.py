"""Start-up: `import brainmri` and `brainmri --help` stay light (no torch), the torchvision fix
still runs before the first torchvision import, and a Ctrl-C while the subcommands load is one
line, not a traceback."""
from __future__ import annotations

import subprocess
import sys

from brainmri.cli import main as cli_main


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_and_parser_do_not_load_torch():
    code = "import sys, brainmri.cli.main as m; m.build_parser(); print(sorted(k for k in ('torch', 'timm', 'torchvision') if k in sys.modules))"
    assert _python(code) == "[]"


def test_the_torchvision_fix_runs_before_the_first_torchvision_import():
    code = (
        "import sys, brainmri, brainmri._compat as c; import timm, torchvision; "
        "print(c._HOOK in sys.meta_path, c.PATCHED == (not c._torchvision_ops_load()), hasattr(timm, 'create_model'))"
    )
    assert _python(code) == "False True True"


def test_ctrl_c_while_the_subcommands_load_is_one_line(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "build_parser", interrupted)
    assert cli_main.main(["--version"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "brainmri: interrupted"
