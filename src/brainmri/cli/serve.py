"""``brainmri serve``: the HTTP service (FastAPI + uvicorn) with its web page at ``/``."""
from __future__ import annotations

import logging
import os

import brainmri
from brainmri.errors import ConfigError

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run(args) -> int:
    import uvicorn

    from brainmri.serving.app import ServeSettings, create_app

    for name in ("max_upload_mb", "workers_concurrency", "timeout"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0")
    if args.queue < 0:
        raise ConfigError("--queue must be >= 0")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port={args.port} must be between 0 and 65535")
    api_key = args.api_key or os.environ.get("BRAINMRI_API_KEY") or None
    if args.host not in LOOPBACK and not api_key:
        log.warning("serving on %s without an API key: anyone who can reach this address can use the model", args.host)
    settings = ServeSettings(
        checkpoint=args.checkpoint,
        backend=args.backend,
        api_key=api_key,
        max_upload_mb=args.max_upload_mb,
        concurrency=args.workers_concurrency,
        queue=args.queue,
        timeout_s=args.timeout,
        nifti_axis=args.axis,
        nifti_slices=args.slices,
    )
    app = create_app(settings)
    print(f"brainmri {brainmri.__version__} serving {app.state.classifier.source} ({settings.backend}) on http://{args.host}:{args.port}/  {brainmri.DISCLAIMER}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info", timeout_keep_alive=5)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the HTTP service and web page",
        description=f"Serve the model over HTTP: POST /v1/predict, GET /v1/model, GET /healthz, a web page at /, docs at /docs. {brainmri.DISCLAIMER}",
    )
    p.add_argument("--checkpoint", "-c", default=None, help="model (.safetensors or .onnx); default: the bundled tumor4 model")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="onnx", help="inference engine (default: onnx, the fastest on CPU)")
    p.add_argument("--api-key", default=None, help="require this key in X-API-Key (default: env BRAINMRI_API_KEY; none: open)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default: 20)")
    p.add_argument("--workers-concurrency", type=int, default=2, help="predictions running at once (default: 2)")
    p.add_argument("--queue", type=int, default=32, help="predictions allowed to wait; beyond that: 503 (default: 32)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a prediction is answered 504 (default: 30)")
    p.add_argument("--axis", default="axial", help="NIfTI uploads: slicing axis (default: axial)")
    p.add_argument("--slices", default="middle:5", help="NIfTI uploads: slices (default: middle:5)")
    p.set_defaults(func=run)
