"""``brainmri serve``: the HTTP service (FastAPI + uvicorn) with its web page at ``/``."""
from __future__ import annotations

import errno
import logging
import math
import os
import socket

import brainmri
from brainmri.errors import ConfigError

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a ConfigError naming them (before the model loads
    and before anything is printed as served)."""
    where = f"--host {host} --port {port}"
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"{where}: {host!r} is not a valid address or a known host name ({getattr(exc, 'strerror', None) or exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = " (the port is in use: stop the other server or pick another --port)" if exc.errno == errno.EADDRINUSE else ""
        raise ConfigError(f"{where}: cannot listen there: {exc.strerror or exc}{hint}") from None
    sock.set_inheritable(True)
    return sock


MAX_UPLOAD_MB = 1024.0**2  # 1 TiB: far beyond any scan; above it the byte count overflows a float
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # a week


def _finite_in(args, name: str, low: float, high: float, low_inclusive: bool = False) -> None:
    """``--name`` must be a finite number in (low, high] (or [low, high]); else a ConfigError
    naming the flag and its value. NaN fails every comparison, so it is tested explicitly."""
    value = getattr(args, name)
    flag = f"--{name.replace('_', '-')}"
    above = value >= low if low_inclusive else value > low
    if not (math.isfinite(value) and above and value <= high):
        sign = ">=" if low_inclusive else ">"
        raise ConfigError(f"{flag}={value} must be a finite number {sign} {low:g} and at most {high:.0f}")


def check_numeric_flags(args) -> None:
    """Refuse NaN, infinity and out-of-range values of the numeric serve flags (before the model
    loads), each with a one-line message naming the flag."""
    _finite_in(args, "max_upload_mb", 0, MAX_UPLOAD_MB)
    _finite_in(args, "timeout", 0, MAX_TIMEOUT_S)
    _finite_in(args, "upload_timeout", 0, MAX_TIMEOUT_S)
    if args.workers_concurrency < 1:
        raise ConfigError(f"--workers-concurrency={args.workers_concurrency} must be >= 1")
    if args.queue < 0:
        raise ConfigError(f"--queue={args.queue} must be >= 0")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port={args.port} must be between 0 and 65535")


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that a forced stop (a second Ctrl-C) still runs the app's
        shutdown (it only stops the inference pool, at once): uvicorn skips it, and the
        cancelled lifespan then logs a traceback. Requests cut off get a JSON 503
        (``GuardMiddleware``)."""

        async def shutdown(self, sockets=None) -> None:
            await super().shutdown(sockets)
            if self.force_exit:
                await self.lifespan.shutdown()

    return Server


def run(args) -> int:
    import uvicorn

    from brainmri.inference.nifti import check_slices_spec, parse_axis
    from brainmri.serving.app import ServeSettings, create_app

    check_numeric_flags(args)
    parse_axis(args.axis)  # a server misconfiguration is refused now, not blamed on each upload
    check_slices_spec(args.slices)
    api_key = args.api_key or os.environ.get("BRAINMRI_API_KEY") or None
    settings = ServeSettings(
        checkpoint=args.checkpoint,
        backend=args.backend,
        api_key=api_key,
        max_upload_mb=args.max_upload_mb,
        concurrency=args.workers_concurrency,
        queue=args.queue,
        timeout_s=args.timeout,
        upload_timeout_s=args.upload_timeout,
        nifti_axis=args.axis,
        nifti_slices=args.slices,
    )
    sock = _bind(args.host, args.port)  # a bad --host is refused before any warning about it
    if args.host not in LOOPBACK and not api_key:
        log.warning("serving on %s without an API key: anyone who can reach this address can use the model", args.host)
    try:
        app = create_app(settings)
        port = sock.getsockname()[1]
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"brainmri {brainmri.__version__} serving {app.state.classifier.source} ({app.state.classifier.backend}) on http://{host}:{port}/  {brainmri.DISCLAIMER}", flush=True)
        config = uvicorn.Config(app, host=args.host, port=port, log_level="warning" if args.quiet else "info", timeout_keep_alive=5)
        _server_class()(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the HTTP service and web page",
        description=(
            "Serve the model over HTTP: POST /v1/predict, GET /v1/model, GET /healthz, a web page at /, "
            "API docs at /docs (Swagger UI loads its scripts from cdn.jsdelivr.net, so that page is blank "
            f"offline; /openapi.json, the page at / and the API itself work offline). {brainmri.DISCLAIMER}"
        ),
    )
    p.add_argument("--checkpoint", "-c", default=None, help="model (.safetensors or .onnx); default: the bundled tumor4 model")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="onnx", help="inference engine (default: onnx, the fastest on CPU)")
    p.add_argument("--api-key", default=None, help="require this key in X-API-Key (default: env BRAINMRI_API_KEY; none: open)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MiB (default: 20)")
    p.add_argument("--workers-concurrency", type=int, default=2, help="predictions running at once (default: 2)")
    p.add_argument("--queue", type=int, default=32, help="predictions allowed to wait; beyond that: 503 (default: 32)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a prediction is answered 504 (default: 30)")
    p.add_argument("--upload-timeout", type=float, default=60.0,
                   help="seconds an upload may take to arrive in full; slower: 408 (default: 60). Slow request headers are not "
                        "timed out: behind the open internet, run a reverse proxy in front")
    p.add_argument("--axis", default="axial", help="NIfTI uploads: slicing axis (default: axial)")
    p.add_argument("--slices", default="middle:5", help="NIfTI uploads: slices (default: middle:5)")
    p.set_defaults(func=run)
