"""A real ``brainmri serve`` process against clients that stall: an upload that does not arrive
in time gets a JSON 408, and a forced stop (a second Ctrl-C) answers the requests it cuts off
with a JSON 503 and exits 130 without a traceback."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest


def _start(ckpt, *flags):
    proc = subprocess.Popen([sys.executable, "-m", "brainmri", "serve", "-c", str(ckpt), "--backend", "torch", "--port", "0", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not match:
        proc.kill()
        pytest.fail(f"server did not start: {line}{proc.stdout.read()}")
    port = int(match.group(1))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("server never listened")


def _stalled_upload(port: int) -> socket.socket:
    """Headers and the start of a multipart body that promises 10,000 bytes, then silence."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    start = b'--B\r\nContent-Disposition: form-data; name="file"; filename="scan.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG'
    sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
                 b"Content-Length: 10000\r\n\r\n" + start)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(re.search(rb"content-length: (\d+)", data.lower()).group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def test_an_upload_that_does_not_arrive_in_time_gets_a_408(tiny_ckpt):
    proc, port = _start(tiny_ckpt, "--upload-timeout", "1")
    try:
        sock = _stalled_upload(port)
        began = time.monotonic()
        status, body = _answer(sock)
        assert status == 408 and body["error"]["code"] == "upload_timeout"
        assert "within 1 s" in body["error"]["message"]
        assert time.monotonic() - began < 10
        sock.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out


def test_a_second_ctrl_c_answers_cut_off_requests_with_503_and_no_traceback(tiny_ckpt):
    proc, port = _start(tiny_ckpt)  # default upload timeout: 60 s, so the uploads stall until stopped
    socks = [_stalled_upload(port) for _ in range(3)]
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # graceful: waits for the requests in flight
    time.sleep(0.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)  # forced
    out, _ = proc.communicate(timeout=60)
    answers = [_answer(s) for s in socks]
    for s in socks:
        s.close()
    assert [status for status, _ in answers] == [503, 503, 503]
    assert all(body["error"]["code"] == "shutting_down" for _, body in answers)
    assert proc.returncode == 130
    assert "Traceback" not in out and "ERROR" not in out
    assert out.count("cut off: the server was stopped") == 3
    assert out.rstrip().endswith("brainmri serve: interrupted")
