"""The HTTP service: FastAPI app with a small web page.

Endpoints:
    ``POST /v1/predict``  multipart field ``file`` (image, DICOM or NIfTI; sniffed from content);
                          ``?explain=true`` adds a Grad-CAM overlay PNG (base64) as ``overlay_png``.
    ``GET /v1/model``     classes, metrics, calibration, intended use, version, disclaimer.
    ``GET /healthz``      liveness.
    ``GET /``             the web page; ``/docs`` the OpenAPI UI (Swagger UI loads its scripts
                          from a CDN, so it is blank offline; ``/openapi.json`` is local).

Limits: API key (401), upload time (408), upload size (413), unsupported content or a body that is not
multipart/form-data (415), unreadable file or an unknown query parameter (422), busy or being stopped (503),
timeout (504). Every error is ``{"error": {"code", "message"}}`` and never a
traceback; the model runs in a thread pool, off the event loop. Nothing here uses a path taken
from a request, and nothing from an upload (file name, DICOM tags) is logged.
Imports nothing from ``brainmri.training``. For research use only; not a medical device.
"""
from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import brainmri
from brainmri.errors import BrainMRIError, CheckpointError, ImageReadError
from brainmri.inference.classifier import Classifier
from brainmri.inference.sniff import sniff_bytes
from brainmri.serving.guard import ApiError, GuardMiddleware, InferenceGate

log = logging.getLogger("brainmri.serving")
STATIC_DIR = Path(__file__).resolve().parent / "static"
UPLOAD_NAME = "upload"  # the name used in messages: never the client's file name
FORM_MEDIA_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
STATUS_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 408: "upload_timeout", 413: "payload_too_large", 415: "unsupported_media_type", 422: "unprocessable", 429: "too_many_requests"}


@dataclass
class ServeSettings:
    """Service configuration (``brainmri serve`` flags)."""

    checkpoint: str | None = None  # None: the bundled model
    backend: str = "onnx"  # fastest on CPU in bench/inference_bench.py
    api_key: str | None = None  # None: open (bind to localhost)
    max_upload_mb: float = 20.0
    concurrency: int = 2  # predictions running at once
    queue: int = 32  # predictions allowed to wait; more get 503
    timeout_s: float = 30.0
    upload_timeout_s: float = 60.0  # the whole body must arrive within this (slow or stalled clients)
    nifti_axis: str = "axial"
    nifti_slices: str = "middle:5"
    max_volume_mb: float = 512.0  # decompressed NIfTI size (gzip bombs)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query")]
        field = ".".join(loc) or "request"
        if err.get("type") == "missing" and field == "file":
            parts.append("missing form field 'file': send the scan as multipart/form-data with field name 'file'")
        elif field == "file" and "UploadFile" in str(err.get("msg", "")):
            parts.append("form field 'file' is text, not a file: attach the scan as a file (curl -F file=@scan.png)")
        else:
            parts.append(f"{field}: {err.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request"


def _declared_query_params(dependant: Any) -> list[str]:
    """The query parameter names an endpoint declares (its own and its dependencies'), in order."""
    names: list[str] = []
    stack = [dependant]
    while stack:
        d = stack.pop()
        names += [getattr(f, "alias", None) or f.name for f in d.query_params if (getattr(f, "alias", None) or f.name) not in names]
        stack.extend(reversed(d.dependencies))
    return names


async def reject_unknown_query_params(request: Request) -> None:
    """A route dependency: a query parameter the endpoint does not declare (a typo, or an option
    it does not have, e.g. ``?slices=all``) is a 422 naming it and the accepted ones, instead of
    being silently ignored."""
    route = request.scope.get("route")
    if route is None or not getattr(route, "dependant", None):
        return
    accepted = _declared_query_params(route.dependant)
    repeated = [k for k in dict.fromkeys(request.query_params.keys()) if len(request.query_params.getlist(k)) > 1]
    if repeated:  # ?explain=true&explain=false: the last one used to win silently
        raise ApiError(422, "invalid_request", f"query parameter {repeated[0][:64]!r} was given {len(request.query_params.getlist(repeated[0]))} times; give it once")
    unknown = [k for k in dict.fromkeys(request.query_params.keys()) if k not in accepted]
    if unknown:
        names = ", ".join(repr(k[:64]) for k in unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        plural = "s" if len(unknown) > 1 else ""
        raise ApiError(422, "invalid_request", f"unknown query parameter{plural} {names}; accepted: {', '.join(accepted) or 'none'}")


def _raw_body_media_type(request: Request) -> str | None:
    """The media type of a request body that is not a form (a raw upload, JSON, text), or None
    for a form or an empty body without a Content-Type."""
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media in FORM_MEDIA_TYPES:
        return None
    if not media:
        has_body = request.headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in request.headers
        return "no Content-Type" if has_body else None
    return f"Content-Type {media[:100]}"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404:
            message = "no such endpoint; see /docs"
        return _error(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        file_missing = any(err.get("type") == "missing" and tuple(err.get("loc", ()))[-1:] == ("file",) for err in exc.errors())
        raw = _raw_body_media_type(request) if file_missing else None
        if raw:  # e.g. curl --data-binary @scan.png -H 'Content-Type: image/png'
            return _error(415, "unsupported_media_type", f"the request body was sent raw ({raw}): send the scan as multipart/form-data with field name 'file' (curl -F file=@scan.png)")
        message = _validation_message(exc)
        if file_missing and (request.headers.get("content-type") or "").lower().startswith("application/x-www-form-urlencoded"):
            message += " (this body is urlencoded, which cannot carry a file: curl --data-binary sends that; use curl -F file=@scan.png)"
        return _error(422, "invalid_request", message)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # Log the type and the endpoint only: messages may quote upload content.
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return _error(500, "internal_error", "internal error while handling the request; it has been logged")


class PredictService:
    """The blocking work of one request, run in the gate's threads."""

    def __init__(self, clf: Classifier, settings: ServeSettings):
        self.clf = clf
        self.settings = settings
        self.explain_available = clf._model is not None and importlib.util.find_spec("brainmri.explain.cam") is not None

    def predict(self, data: bytes, explain: bool) -> dict[str, Any]:
        from brainmri.inference.inputs import decode_bytes

        decoded = decode_bytes(
            data, UPLOAD_NAME, axis=self.settings.nifti_axis, slices=self.settings.nifti_slices,
            max_volume_bytes=int(self.settings.max_volume_mb * 1024**2),
        )
        pred = self.clf.predict_decoded([decoded])[0]
        out = pred.to_dict()
        out["path"] = UPLOAD_NAME
        out["disclaimer"] = brainmri.DISCLAIMER
        if explain:
            out["overlay_png"] = None
            if pred.out_of_distribution:
                out["overlay_note"] = "no overlay: the input is out of distribution"
            else:
                k = decoded.indices.index(pred.most_suspicious_slices[0]) if decoded.is_volume else 0
                out["overlay_png"] = _png_base64(self.clf.explain_image(decoded.images[k]))
                if decoded.is_volume:
                    out["overlay_slice"] = decoded.indices[k]
        return out


def _png_base64(rgb) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _load_classifier(settings: ServeSettings) -> Classifier:
    """Load the model; if the ONNX export of a checkpoint fails, serve it with PyTorch instead."""
    try:
        return Classifier.load(settings.checkpoint, backend=settings.backend)
    except CheckpointError as exc:
        if settings.backend != "onnx" or "ONNX export" not in str(exc):
            raise
        log.warning("ONNX export failed (%s); serving with the torch backend", exc)
        return Classifier.load(settings.checkpoint, backend="torch")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error the service answers: ``{"error": {"code", "message"}}`` (what /openapi.json documents)."""

    error: ErrorDetail


ERROR_RESPONSES = {status: {"model": ErrorBody, "description": text} for status, text in (
    (400, "empty upload or malformed request"), (401, "missing or wrong API key (when the server has one)"),
    (408, "the upload did not arrive in full within the server's upload timeout"), (413, "upload over the size limit"), (415, "not an image, DICOM or NIfTI file (or a raw body: send multipart)"),
    (422, "unreadable file, bad form field or query parameter"), (500, "internal error (logged)"),
    (501, "explanations unavailable for this model"), (503, "busy, or the server was stopped mid-request: retry after Retry-After seconds"),
    (504, "the prediction took longer than the server's timeout"))}


def create_app(settings: ServeSettings | None = None, classifier: Classifier | None = None) -> FastAPI:
    """Build the app. The model is loaded now (errors surface at start, not on a request).

    Args:
        settings: limits and model choice.
        classifier: an already loaded model (tests); default loads ``settings.checkpoint``.
    """
    settings = settings or ServeSettings()
    clf = classifier or _load_classifier(settings)
    service = PredictService(clf, settings)
    gate = InferenceGate(settings.concurrency, settings.queue, settings.timeout_s)
    max_bytes = int(settings.max_upload_mb * 1024**2)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        gate.shutdown()

    app = FastAPI(
        lifespan=lifespan,
        title="brainmri",
        version=brainmri.__version__,
        description=f"Brain MRI classification service. {brainmri.DISCLAIMER}",
    )
    app.state.settings, app.state.classifier, app.state.gate = settings, clf, gate
    _install_error_handlers(app)
    # documents the key for /docs ("Authorize"); GuardMiddleware is what checks it
    key_scheme = [Security(APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's --api-key"))] if settings.api_key else []

    @app.get("/healthz", summary="Liveness")
    @app.head("/healthz", include_in_schema=False)  # uptime checkers ask with HEAD
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": True, "backend": clf.backend, "in_flight": gate.pending}

    @app.get("/v1/model", summary="Model card: classes, metrics, calibration, intended use",
             responses={401: ERROR_RESPONSES[401]}, dependencies=key_scheme)
    async def model_info() -> dict[str, Any]:
        info = clf.describe()
        info["explain_available"] = service.explain_available
        info["limits"] = {"max_upload_mb": settings.max_upload_mb, "timeout_s": settings.timeout_s}
        info["accepted_formats"] = ["png", "jpeg", "bmp", "tiff", "gif", "webp", "dicom", "nifti"]
        return info

    @app.post("/v1/predict", summary="Classify one scan (image, DICOM or NIfTI)", responses=ERROR_RESPONSES,
              dependencies=[Depends(reject_unknown_query_params), *key_scheme])
    async def predict(request: Request, file: UploadFile = File(..., description="the scan"), explain: bool = False) -> dict[str, Any]:
        form = await request.form()  # parsed once already; FastAPI keeps only the last 'file'
        n_files = len(form.getlist("file"))
        if n_files > 1:
            await file.close()
            raise ApiError(422, "invalid_request", f"form field 'file' was sent {n_files} times; send one scan per request")
        other = [k for k in dict.fromkeys(form.keys()) if k != "file"]
        if other:  # a second scan under another name would be silently ignored
            await file.close()
            raise ApiError(422, "invalid_request", f"unexpected form field {other[0][:64]!r}; send the scan as the one field 'file'")
        data = await file.read(max_bytes + 1)
        await file.close()
        if len(data) > max_bytes:
            raise ApiError(413, "payload_too_large", f"upload is over the {settings.max_upload_mb:g} MiB limit")
        if not data:
            raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes)")
        if sniff_bytes(data[: 64 * 1024]) is None:
            raise ApiError(415, "unsupported_media_type", "unsupported content: not a PNG/JPEG/BMP/TIFF/GIF/WebP image, DICOM or NIfTI file (the format is detected from the content, not the name)")
        if explain and not service.explain_available:
            raise ApiError(501, "explain_unavailable", "explanations are not available with this model (they need the PyTorch checkpoint and brainmri.explain)")
        try:
            return await gate.run(service.predict, data, explain)
        except ImageReadError as exc:
            raise ApiError(422, "unreadable_file", exc.reason) from None
        except BrainMRIError as exc:
            raise ApiError(422, "unprocessable", str(exc).replace(UPLOAD_NAME + ": ", "", 1)) from None
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - answered here: Starlette would re-raise it to the server, which logs the traceback
            log.error("internal error on POST /v1/predict: %s", type(exc).__name__)
            raise ApiError(500, "internal_error", "internal error while handling the request; it has been logged") from None

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(GuardMiddleware, api_key=settings.api_key, max_upload_mb=settings.max_upload_mb, upload_timeout_s=settings.upload_timeout_s)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory brainmri.serving.app:app_from_env`` (BRAINMRI_CHECKPOINT,
    BRAINMRI_BACKEND, BRAINMRI_API_KEY)."""
    return create_app(
        ServeSettings(
            checkpoint=os.environ.get("BRAINMRI_CHECKPOINT") or None,
            backend=os.environ.get("BRAINMRI_BACKEND", ServeSettings.backend),
            api_key=os.environ.get("BRAINMRI_API_KEY") or None,
        )
    )
