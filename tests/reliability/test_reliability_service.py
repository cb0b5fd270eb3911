"""Bad input and hostile requests through the HTTP service (issue #7): every bad upload gets a 4xx
JSON error that says what is wrong, valid uploads still get predictions, the service keeps
answering, no user-controlled paths, constant-time API key check, no patient data in responses
or logs."""
from __future__ import annotations

import inspect
import logging
import re

import numpy as np
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from brainmri import Classifier
from brainmri.serving.app import ServeSettings, create_app
from dicom_factory import PATIENT, make_dicom
from reliability_corpus import CASE_NAMES, phantom

PHI_VALUES = list(PATIENT.values())  # full values: short fragments could occur by chance in base64 overlays


@pytest.fixture(scope="module")
def clf(ckpt32) -> Classifier:
    return Classifier.load(ckpt32)


@pytest.fixture(scope="module")
def client(clf) -> TestClient:
    return TestClient(create_app(ServeSettings(backend="torch", max_upload_mb=2.0), classifier=clf), raise_server_exceptions=False)


def _post(client: TestClient, data: bytes, filename: str = "scan.png", **kw):
    return client.post("/v1/predict", files={"file": (filename, data, "application/octet-stream")}, **kw)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_each_corpus_file_gets_a_prediction_or_a_4xx_json_error(client, corpus, name: str) -> None:
    folder, cases = corpus
    case = cases[name]
    r = _post(client, (folder / name).read_bytes(), filename=name)
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert r.status_code == case.status, r.text
    body = r.json()
    if case.ok:
        assert body["error"] is None and abs(sum(body["probabilities"].values()) - 1) < 1e-4
    else:
        assert set(body) == {"error"}
        err = body["error"]
        assert err["code"] and re.search(case.reason, err["message"]), err
        assert name not in err["message"]  # the client's file name is never echoed
    assert client.get("/healthz").status_code == 200


def test_service_keeps_answering_after_a_burst_of_bad_uploads(client, corpus) -> None:
    folder, cases = corpus
    for name in [n for n in CASE_NAMES if not cases[n].ok] * 3:
        assert 400 <= _post(client, (folder / name).read_bytes()).status_code < 500
    assert client.get("/healthz").json()["status"] == "ok"
    assert _post(client, (folder / "png_named.jpg").read_bytes()).status_code == 200
    assert client.app.state.gate.pending == 0  # no request left holding a slot


def test_uploads_are_size_limited_before_decoding(clf) -> None:
    small = TestClient(create_app(ServeSettings(backend="torch", max_upload_mb=0.05), classifier=clf), raise_server_exceptions=False)
    r = _post(small, b"\x89PNG\r\n\x1a\n" + bytes(200_000))
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert small.get("/healthz").status_code == 200


def test_routes_take_no_user_controlled_paths(client) -> None:
    routes = [r for r in client.app.routes if isinstance(r, APIRoute)]
    assert {r.path for r in routes} >= {"/healthz", "/v1/model", "/v1/predict", "/"}
    for route in routes:
        assert not route.dependant.path_params, route.path
        for param in route.dependant.query_params:
            assert param.field_info.annotation is bool, f"{route.path}: query parameter {param.name} is not a flag"
    predict = next(r for r in routes if r.path == "/v1/predict")
    assert [p.name for p in predict.dependant.body_params] == ["file"]
    # the static mount cannot be walked out of
    for probe in ("/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/checkpoint.py", "/static//etc/passwd"):
        r = client.get(probe)
        assert r.status_code == 404 and "import" not in r.text and "root:" not in r.text, probe


def test_api_key_is_compared_in_constant_time(clf, corpus) -> None:
    from brainmri.serving.guard import GuardMiddleware

    assert "hmac.compare_digest" in inspect.getsource(GuardMiddleware._key_ok)
    keyed = TestClient(create_app(ServeSettings(backend="torch", api_key="s3cret-key"), classifier=clf), raise_server_exceptions=False)
    png = (corpus[0] / "png_named.jpg").read_bytes()
    for headers in ({}, {"X-API-Key": "s3cret-kex"}, {"X-API-Key": ""}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3cret-key-and-more"}):
        r = _post(keyed, png, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", headers
        assert "s3cret" not in r.text
    assert _post(keyed, png, headers={"X-API-Key": "s3cret-key"}).status_code == 200
    assert _post(keyed, png, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    assert keyed.get("/healthz").status_code == 200  # liveness stays open


@pytest.mark.parametrize("pixel_data", [True, False])
def test_no_patient_identifiers_in_responses_or_logs(client, tmp_path, caplog, pixel_data: bool) -> None:
    path = make_dicom(tmp_path / "Doe^Jane.dcm", phantom(1, size=48).astype(np.uint16) * 8, pixel_data=pixel_data)
    with caplog.at_level(logging.DEBUG):
        r = _post(client, path.read_bytes(), filename="Doe^Jane PID-778899.dcm")
        r_explain = _post(client, path.read_bytes(), filename="Doe^Jane.dcm", params={"explain": "true"})
    assert r.status_code == (200 if pixel_data else 422), r.text
    for text in (r.text, r_explain.text, caplog.text):
        for value in PHI_VALUES:
            assert value not in text, f"{value!r} leaked"
    if pixel_data:
        info = r.json()["info"]
        assert set(info) <= {"format", "modality", "rows", "columns", "frames", "photometric_interpretation", "transfer_syntax"}


def test_errors_carry_no_stack_trace_even_for_internal_failures(clf, corpus, monkeypatch, caplog) -> None:
    """An unexpected failure inside a prediction is answered as a generic 500 and not re-raised to
    the ASGI server (Starlette re-raises what reaches its last-resort handler, and uvicorn then
    logs the whole traceback with the exception's message): ``raise_server_exceptions=True``
    makes such a re-raise fail this test."""
    from brainmri.serving import app as app_module

    c = TestClient(create_app(ServeSettings(backend="torch"), classifier=clf), raise_server_exceptions=True)

    def boom(*_a, **_k):
        raise RuntimeError("secret detail /home/user/Doe^Jane.dcm")

    monkeypatch.setattr(app_module.PredictService, "predict", boom)
    with caplog.at_level(logging.DEBUG):
        r = _post(c, (corpus[0] / "png_named.jpg").read_bytes())
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    for text in (r.text, caplog.text):
        assert "Traceback" not in text and "secret detail" not in text and "Doe^Jane" not in text
    assert c.get("/healthz").status_code == 200
