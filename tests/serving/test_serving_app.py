"""The HTTP service: endpoints, limits, errors as JSON, no training imports."""
from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
import time

import nibabel as nib
import numpy as np
import pytest
from dicom_factory import PATIENT, make_dicom
from fastapi.testclient import TestClient
from inference_helpers import phantom
from PIL import Image

from brainmri import Classifier
from brainmri.serving.app import ServeSettings, create_app

DISCLAIMER = "For research use only; not a medical device."


def _client(clf, **settings) -> TestClient:
    return TestClient(create_app(ServeSettings(**settings), classifier=clf), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(tiny_clf) -> TestClient:
    return _client(tiny_clf, max_upload_mb=1.0)


def _assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    return body["error"]


def test_healthz_and_model(client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    for path in ("/healthz", "/"):  # uptime checkers ask with HEAD
        r = client.head(path)
        assert r.status_code == 200 and r.content == b""
    info = client.get("/v1/model").json()
    assert info["classes"] == ["glioma", "meningioma", "notumor", "pituitary"]
    assert info["disclaimer"] == DISCLAIMER and info["intended_use"] and info["version"]
    assert info["calibration"]["temperature"] == 1.0 and "metrics" in info


def test_predict_png(client, phantom_png) -> None:
    r = client.post("/v1/predict", files={"file": ("brain.png", phantom_png, "image/png")})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["error"] is None and d["out_of_distribution"] is False and d["label"] in d["probabilities"]
    assert d["disclaimer"] == DISCLAIMER and d["path"] == "upload"
    assert sum(d["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_predict_explain_returns_a_png_overlay(client, phantom_png) -> None:
    pytest.importorskip("pytorch_grad_cam")
    d = client.post("/v1/predict?explain=true", files={"file": ("x", phantom_png)}).json()
    png = base64.b64decode(d["overlay_png"])
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.size == (80, 80)


def test_predict_dicom_and_nifti_uploads(client, tmp_path) -> None:
    dcm = make_dicom(tmp_path / "x.dcm", phantom(1, size=64).astype(np.uint16))
    r = client.post("/v1/predict", files={"file": ("scan", dcm.read_bytes(), "application/octet-stream")})
    assert r.status_code == 200 and r.json()["info"]["format"] == "dicom"
    for value in PATIENT.values():
        assert value not in r.text
    vol = np.stack([np.rot90(phantom(k % 4, size=64, seed=k), -1) for k in range(7)], axis=2).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "v.nii.gz"))
    d = client.post("/v1/predict?explain=true", files={"file": ("v.nii.gz", (tmp_path / "v.nii.gz").read_bytes())}).json()
    assert len(d["slices"]) == 5 and len(d["most_suspicious_slices"]) == 3
    assert d["overlay_slice"] == d["most_suspicious_slices"][0] and base64.b64decode(d["overlay_png"])[:4] == b"\x89PNG"


def test_too_large_is_413(client) -> None:
    big = b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024)
    err = _assert_error(client.post("/v1/predict", files={"file": ("big.png", big)}), 413, "payload_too_large")
    assert "over the 1 MiB limit" in err["message"]


def test_text_named_png_is_415(client) -> None:
    err = _assert_error(client.post("/v1/predict", files={"file": ("scan.png", b"just text", "image/png")}), 415, "unsupported_media_type")
    assert "content" in err["message"]


def test_corrupt_image_is_422_and_empty_is_400(client, phantom_png) -> None:
    _assert_error(client.post("/v1/predict", files={"file": ("t.png", phantom_png[:80])}), 422, "unreadable_file")
    _assert_error(client.post("/v1/predict", files={"file": ("e.png", b"")}), 400, "empty_file")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": {"other": "1"}},
        {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    ],
)
def test_malformed_requests_are_json_errors(client, kwargs: dict) -> None:
    err = _assert_error(client.post("/v1/predict", **kwargs), 422, "invalid_request")
    assert "field 'file'" in err["message"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b"abc", "headers": {"content-type": "text/plain"}},
    ],
)
def test_non_form_bodies_are_415_json_errors(client, kwargs: dict) -> None:
    err = _assert_error(client.post("/v1/predict", **kwargs), 415, "unsupported_media_type")
    assert "multipart/form-data" in err["message"] and "field name 'file'" in err["message"]


def test_bad_query_value_names_the_field(client, phantom_png) -> None:
    err = _assert_error(client.post("/v1/predict?explain=maybe", files={"file": ("a.png", phantom_png)}), 422, "invalid_request")
    assert err["message"].startswith("explain:")


def test_unknown_path_and_method(client) -> None:
    _assert_error(client.get("/v1/nothing"), 404, "not_found")
    _assert_error(client.get("/v1/predict"), 405, "method_not_allowed")


def test_api_key(tiny_clf, phantom_png) -> None:
    c = _client(tiny_clf, api_key="s3cret")
    _assert_error(c.get("/v1/model"), 401, "unauthorized")
    _assert_error(c.post("/v1/predict", files={"file": ("a.png", phantom_png)}, headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert c.get("/v1/model", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert c.post("/v1/predict", files={"file": ("a.png", phantom_png)}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200  # page and liveness stay open


class _Exploding(Classifier):
    def predict_decoded(self, decoded, batch_size=32):
        raise RuntimeError("secret internal detail /home/user/patient.dcm")


class _Slow(Classifier):
    def predict_decoded(self, decoded, batch_size=32):
        time.sleep(0.6)
        return super().predict_decoded(decoded, batch_size)


def _clone(clf: Classifier, cls: type) -> Classifier:
    return cls(clf.runner, clf.meta, clf.source, clf.backend, model=clf._model)


def test_internal_error_is_generic_500_and_service_stays_up(tiny_clf, phantom_png, caplog) -> None:
    c = _client(_clone(tiny_clf, _Exploding))
    err = _assert_error(c.post("/v1/predict", files={"file": ("a.png", phantom_png)}), 500, "internal_error")
    assert "secret" not in err["message"] and "patient" not in caplog.text
    assert c.get("/healthz").status_code == 200


def test_timeout_is_504(tiny_clf, phantom_png) -> None:
    c = _client(_clone(tiny_clf, _Slow), timeout_s=0.2)
    _assert_error(c.post("/v1/predict", files={"file": ("a.png", phantom_png)}), 504, "timeout")
    time.sleep(0.6)
    assert c.get("/healthz").json()["in_flight"] == 0


def test_saturated_is_503(tiny_clf, phantom_png) -> None:
    c = _client(_clone(tiny_clf, _Slow), concurrency=1, queue=0, timeout_s=5)
    statuses = []

    def call() -> None:
        statuses.append(c.post("/v1/predict", files={"file": ("a.png", phantom_png)}).status_code)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses)[0] == 200 and 503 in statuses


def test_page_and_docs(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and DISCLAIMER in page.text and "app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_serving_imports_no_training_code() -> None:
    code = (
        "import sys, json, brainmri.serving.app, brainmri.inference, brainmri.cli.predict, brainmri.cli.serve;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "brainmri.serving.app" in loaded and "brainmri.inference.classifier" in loaded
    assert [m for m in loaded if m.startswith("brainmri.training") or m.split(".")[0] in ("lightning", "pytorch_lightning")] == []


def test_a_text_field_named_file_asks_for_a_file(client) -> None:
    err = _assert_error(client.post("/v1/predict", data={"file": "hello"}), 422, "invalid_request")
    assert err["message"].startswith("form field 'file' is text, not a file")


def test_two_files_in_one_request_are_refused(client, phantom_png) -> None:
    files = [("file", ("a.png", phantom_png)), ("file", ("b.png", phantom_png))]
    err = _assert_error(client.post("/v1/predict", files=files), 422, "invalid_request")
    assert err["message"] == "form field 'file' was sent 2 times; send one scan per request"


def test_a_request_that_only_waited_in_the_queue_is_told_so_not_blamed_for_a_slow_scan() -> None:
    import asyncio

    from brainmri.serving.guard import ApiError, InferenceGate

    gate = InferenceGate(concurrency=1, queue=1, timeout_s=0.3)

    async def both():
        slow = asyncio.ensure_future(gate.run(time.sleep, 1.0))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(gate.run(lambda: "never ran"))
        return await asyncio.gather(slow, waiting, return_exceptions=True)

    slow, waiting = asyncio.run(both())
    assert isinstance(slow, ApiError) and slow.status == 504 and "took longer than 0.3 s" in slow.message
    assert isinstance(waiting, ApiError) and waiting.status == 503 and "waited 0.3 s for a free worker" in waiting.message


def test_openapi_documents_the_real_error_body_and_the_api_key(tiny_clf) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a duplicate operation id
        spec = _client(tiny_clf, api_key="s3cret").get("/openapi.json").json()
    post = spec["paths"]["/v1/predict"]["post"]
    assert {"400", "401", "413", "415", "422", "503", "504"} <= set(post["responses"])
    assert post["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey", "description": "the server's --api-key", "in": "header", "name": "X-API-Key"}
    assert post["security"] == [{"APIKeyHeader": []}]


def test_a_second_scan_or_a_repeated_parameter_is_refused_not_ignored(client, phantom_png) -> None:
    err = _assert_error(client.post("/v1/predict", files={"file": ("a.png", phantom_png), "other": ("b.png", phantom_png)}),
                        422, "invalid_request")
    assert err["message"] == "unexpected form field 'other'; send the scan as the one field 'file'"
    err = _assert_error(client.post("/v1/predict?explain=true&explain=false", files={"file": ("a.png", phantom_png)}), 422, "invalid_request")
    assert err["message"] == "query parameter 'explain' was given 2 times; give it once"
    r = client.post("/v1/predict", content=phantom_png, headers={"Content-Type": "application/x-www-form-urlencoded"})  # curl --data-binary
    assert "urlencoded, which cannot carry a file" in _assert_error(r, 422, "invalid_request")["message"]
