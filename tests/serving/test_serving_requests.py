"""Requests the service must refuse instead of silently misreading: unknown query parameters
(422 naming them and the accepted ones) and raw, non-multipart bodies (415 saying how to send
the scan)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from brainmri.serving.app import ServeSettings, create_app


@pytest.fixture(scope="module")
def client(tiny_clf) -> TestClient:
    return TestClient(create_app(ServeSettings(max_upload_mb=1.0), classifier=tiny_clf), raise_server_exceptions=False)


def _error(resp, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert "Traceback" not in resp.text
    return body["error"]["message"]


@pytest.mark.parametrize("query, named", [
    ("slices=all", "'slices'"),
    ("explian=true", "'explian'"),  # a typo of explain
    ("explain=false&slices=all&foo=1", "'slices', 'foo'"),
])
def test_unknown_query_parameters_are_422_naming_them(client, phantom_png, query, named) -> None:
    msg = _error(client.post(f"/v1/predict?{query}", files={"file": ("a.png", phantom_png)}), 422, "invalid_request")
    assert named in msg and "accepted: explain" in msg
    assert msg.startswith("unknown query parameter")
    assert "\n" not in msg


def test_declared_query_parameters_still_work(client, phantom_png) -> None:
    for url in ("/v1/predict", "/v1/predict?explain=false"):
        r = client.post(url, files={"file": ("a.png", phantom_png)})
        assert r.status_code == 200, r.text
        assert r.json()["label"]


def test_unknown_query_parameter_is_reported_before_a_bad_value(client, phantom_png) -> None:
    msg = _error(client.post("/v1/predict?explain=maybe&foo=1", files={"file": ("a.png", phantom_png)}), 422, "invalid_request")
    assert "'foo'" in msg


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", "application/dicom", "application/json", "text/plain"])
def test_a_raw_body_is_415_asking_for_multipart(client, phantom_png, content_type) -> None:
    msg = _error(client.post("/v1/predict", content=phantom_png, headers={"content-type": content_type}), 415, "unsupported_media_type")
    assert "multipart/form-data" in msg and "'file'" in msg and content_type in msg


def test_a_raw_body_without_content_type_is_415(client, phantom_png) -> None:
    msg = _error(client.post("/v1/predict", content=phantom_png), 415, "unsupported_media_type")
    assert "no Content-Type" in msg and "multipart/form-data" in msg


def test_forms_without_a_file_stay_422(client) -> None:
    # a form that lacks the field is a form problem, not a media-type one
    msg = _error(client.post("/v1/predict", data={"other": "1"}), 422, "invalid_request")
    assert "missing form field 'file'" in msg
    msg = _error(client.post("/v1/predict", files={"other": ("a.png", b"x")}), 422, "invalid_request")
    assert "missing form field 'file'" in msg
    # an empty POST without a Content-Type is answered as a missing field, as before
    _error(client.post("/v1/predict"), 422, "invalid_request")
