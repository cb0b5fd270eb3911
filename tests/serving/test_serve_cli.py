"""``brainmri serve`` startup: NIfTI flags refused at startup, bind errors naming host and port,
and the server run on the socket that was checked."""
from __future__ import annotations

import socket

import pytest
import uvicorn

from brainmri.cli.main import main


@pytest.fixture()
def no_server(monkeypatch):
    """Fail the test if a server would actually start."""
    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("the server started"))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))


@pytest.mark.parametrize("flag, value, message", [
    ("--slices", "foo", "slices='foo' is not valid"),
    ("--slices", "5:2:0", "slices="),
    ("--axis", "diagonal", "axis='diagonal' is not valid"),
])
def test_bad_nifti_flags_are_refused_at_startup(tiny_ckpt, no_server, capsys, flag, value, message):
    assert main(["serve", "-c", str(tiny_ckpt), "--backend", "torch", flag, value]) == 2
    cap = capsys.readouterr()
    assert message in cap.err and cap.err.count("\n") == 1
    assert "serving" not in cap.out


def test_a_port_in_use_names_host_and_port(tiny_ckpt, no_server, capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        assert main(["serve", "-c", str(tiny_ckpt), "--backend", "torch", "--port", str(port)]) == 2
    finally:
        taken.close()
    cap = capsys.readouterr()
    assert cap.err.startswith(f"brainmri serve: error: --host 127.0.0.1 --port {port}: cannot listen there")
    assert "in use" in cap.err and cap.err.count("\n") == 1
    assert "serving" not in cap.out  # no "serving on ..." line for a server that never ran


def test_an_unknown_host_is_named(tiny_ckpt, no_server, capsys):
    assert main(["serve", "-c", str(tiny_ckpt), "--backend", "torch", "--host", "999.1.1.1", "--api-key", "k"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("brainmri serve: error: --host 999.1.1.1 --port 8000: '999.1.1.1' is not a valid address")


def test_the_server_runs_on_the_checked_socket_and_prints_its_port(tiny_ckpt, monkeypatch, capsys):
    seen = {}

    def fake_run(self, sockets=None):
        [sock] = sockets
        seen["port"] = sock.getsockname()[1]
        seen["listening"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        seen["config_port"] = self.config.port

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    assert main(["serve", "-c", str(tiny_ckpt), "--backend", "torch", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert seen["port"] > 0 and seen["listening"] == 1 and seen["config_port"] == seen["port"]
    assert f"on http://127.0.0.1:{seen['port']}/" in out


@pytest.mark.parametrize("flag, value", [
    ("--max-upload-mb", "nan"),
    ("--max-upload-mb", "inf"),
    ("--max-upload-mb", "-inf"),
    ("--max-upload-mb", "0"),
    ("--max-upload-mb", "1e308"),  # finite, but its byte count overflows
    ("--timeout", "nan"),
    ("--timeout", "inf"),
    ("--timeout", "-1"),
    ("--timeout", "1e12"),
])
def test_non_finite_or_out_of_range_float_flags_are_refused(tiny_ckpt, no_server, capsys, flag, value):
    assert main(["serve", "-c", str(tiny_ckpt), "--backend", "torch", f"{flag}={value}"]) == 2
    cap = capsys.readouterr()
    assert cap.err.startswith(f"brainmri serve: error: {flag}=") and "must be a finite number > 0" in cap.err
    assert cap.err.count("\n") == 1 and "internal error" not in cap.err
    assert "serving" not in cap.out


@pytest.mark.parametrize("flag, value, message", [
    ("--workers-concurrency", "0", "--workers-concurrency=0 must be >= 1"),
    ("--queue", "-1", "--queue=-1 must be >= 0"),
    ("--port", "70000", "--port=70000 must be between 0 and 65535"),
])
def test_out_of_range_int_flags_are_refused(tiny_ckpt, no_server, capsys, flag, value, message):
    assert main(["serve", "-c", str(tiny_ckpt), "--backend", "torch", f"{flag}={value}"]) == 2
    cap = capsys.readouterr()
    assert message in cap.err and "internal error" not in cap.err


@pytest.mark.parametrize("flag", ["--workers-concurrency", "--queue", "--port"])
def test_nan_for_an_int_flag_is_an_argparse_error(no_server, capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(["serve", f"{flag}=nan"])
    assert exc.value.code == 2
    assert f"argument {flag}: invalid int value: 'nan'" in capsys.readouterr().err


def test_large_but_sane_limits_are_accepted(tiny_ckpt, monkeypatch):
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    assert main(["serve", "-c", str(tiny_ckpt), "--backend", "torch", "--port", "0", "--max-upload-mb", "0.5", "--timeout", "3600"]) == 0


def test_help_says_docs_need_internet(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "/docs" in out and "blank offline" in out and "/openapi.json" in out
