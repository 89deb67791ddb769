"""`fer-jax serve`: the predict command as an HTTP service (FastAPI + uvicorn), with a web page.

    GET  /             a page to upload a video and see its timeline plot and windows (web/index.html)
    GET  /healthz      {"status": "ok", model, step, task, class_names, limits, in_flight, ...}
    POST /v1/predict   multipart field "video" -> the timeline JSON of `fer_jax.infer.predict`;
                       query: stride, window_frames (frames), all_faces (bool),
                       plot (bool: add "plot_png", base64)
    GET  /docs, /openapi.json   FastAPI's OpenAPI document (limits and authentication included)

The model is restored and compiled once, at start. Requests prepare their windows in parallel
(at most `max_parallel` at a time; the others wait their turn) and share one batching worker
for the model (`batching.BatchQueue`). Errors a client causes are 4xx with a message naming the
uploaded file: 413 too large (bytes, pixels per frame, frames or seconds of video), 415 not a
video, 400 empty or cut short, 422 no face / no audio / over the processing time.

Holding under abuse: the limits of `fer_jax.infer.limits` are checked on the video's header before
a frame is decoded, then on every frame; past `max_requests` requests in flight a new one gets 503
with Retry-After; a request's work stops when its client disconnects (polled every
DISCONNECT_POLL_S); on SIGTERM in-flight requests get `shutdown_seconds` to finish, then are
abandoned (503) and the server exits. With a token (`--token` or FER_JAX_TOKEN) every route but
/healthz needs `Authorization: Bearer TOKEN` (401 otherwise). The server listens on loopback
unless told otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import ctypes
import functools
import hmac
import json
import os
import pathlib
import re
import tempfile
import threading

import fastapi
import uvicorn
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from fer_jax.errors import FerJaxError, InputError
from fer_jax.infer.batching import BatchQueue
from fer_jax.infer.limits import (DEFAULT_MAX_REQUESTS, DEFAULT_SHUTDOWN_SECONDS, SERVE_LIMITS, TOKEN_ENV, Budget,
                                  Cancelled, Limits, option)
from fer_jax.infer.loader import InferenceModel
from fer_jax.infer.predict import predict_video
from fer_jax.infer.timeline import plot_timeline

DEFAULT_MAX_UPLOAD_MB = 200
DISCONNECT_POLL_S = 0.2
RETRY_AFTER_S = 2
# InputError reason -> HTTP status.
STATUS_OF_REASON = {
    "undecodable": 415, "no_video_stream": 415, "unsupported_codec": 415,
    "zero_byte": 400, "truncated": 400, "no_frames": 400, "missing": 400,
    "no_face": 422, "no_audio": 422,
    "frame_too_large": 413, "too_long": 413, "too_slow": 422,
}
_CHUNK = 1 << 20
_INDEX = pathlib.Path(__file__).parent / "web" / "index.html"
_OPEN_PATHS = ("/healthz",)  # answered without the token


def _safe_name(name: str | None) -> str:
    """The client's file name, reduced to characters safe in a path (kept so errors name it)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(name or "")).strip("._") or "upload"
    return base[:100]


def create_app(model: InferenceModel, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB << 20,
               max_parallel: int | None = None, limits: Limits = SERVE_LIMITS,
               max_requests: int = DEFAULT_MAX_REQUESTS, token: str | None = None) -> fastapi.FastAPI:
    """The service for `model`. max_parallel: requests decoding at once (default the CPU count);
    max_requests: requests admitted at once (uploading, waiting or working), 503 past it;
    token: required as `Authorization: Bearer TOKEN` on every route but /healthz."""
    app = fastapi.FastAPI(title="fer-jax", version="1", description=_description(limits, max_upload_bytes,
                                                                                max_requests, token))
    model.warm_up()  # compile now, not on the first request
    batcher = BatchQueue(model.predict, model.batch_size)
    slots = threading.BoundedSemaphore(max_parallel or os.cpu_count() or 1)
    workers = concurrent.futures.ThreadPoolExecutor(max_requests, thread_name_prefix="fer-jax-request")
    in_flight: set[Budget] = set()
    app.state.model, app.state.batcher, app.state.in_flight = model, batcher, in_flight
    app.add_middleware(_Gate, token=token, max_requests=max_requests, max_upload_bytes=max_upload_bytes)

    def abandon_in_flight() -> None:
        for budget in list(in_flight):
            budget.cancel("the server is shutting down")

    app.state.abandon_in_flight = abandon_in_flight

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        return HTMLResponse(_INDEX.read_text())

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "model": model.config.model.name, "checkpoint": str(model.workdir), "step": model.step,
                "task": model.task, "class_names": model.class_names, "window_frames": model.clip.clip_frames,
                "max_upload_bytes": max_upload_bytes, "limits": limits.to_json(), "max_requests": max_requests,
                "in_flight": len(in_flight), "token_required": token is not None, "batches_run": batcher.batches_run}

    def predict_upload(upload, name: str, budget: Budget, stride, window_frames, all_faces: bool, plot: bool):
        """The request's work, in a worker thread: the timeline, or the error response."""
        try:
            with tempfile.TemporaryDirectory(prefix="fer-jax-serve-") as tmp:
                path = pathlib.Path(tmp) / name
                size = 0
                with open(path, "wb") as f:
                    while chunk := upload.read(_CHUNK):
                        size += len(chunk)
                        if size > max_upload_bytes:
                            return _error(413, "too_large",
                                          f"{name}: upload is over the limit of {max_upload_bytes} bytes "
                                          "(--max-upload-mb raises it)")
                        f.write(chunk)
                while not slots.acquire(timeout=DISCONNECT_POLL_S):  # waiting its turn can be cancelled too
                    budget.check_time(name)
                try:
                    timeline, _ = predict_video(path, model, stride=stride, all_faces=all_faces,
                                                window=window_frames, run_batch=batcher.run, budget=budget)
                finally:
                    slots.release()
            timeline["video"] = name
            if plot:
                timeline["plot_png"] = base64.b64encode(plot_timeline(timeline)).decode("ascii")
            return timeline
        except InputError as e:
            return _error(STATUS_OF_REASON.get(e.reason, 400), e.reason, f"{name}: {e.message}")
        except Cancelled as e:
            return _error(503, "cancelled", str(e), retry_after=True)
        except FerJaxError as e:  # e.g. a model that reads features its preprocessing does not make
            return _error(400, "unusable", f"{name}: {e}")
        finally:
            _release_freed_memory()

    @app.post("/v1/predict", responses={
        401: {"description": "a token is set and the request lacks it"},
        413: {"description": "over a limit: upload bytes, pixels per frame, frames or seconds of video"},
        415: {"description": "not a video"}, 422: {"description": "no face, no audio, or over the processing time"},
        503: {"description": "too many requests in flight, or the server is stopping: retry after Retry-After"}})
    async def predict(request: fastapi.Request, video: fastapi.UploadFile, stride: int | None = None,
                      window_frames: int | None = None, all_faces: bool = False, plot: bool = False):
        name = _safe_name(video.filename)
        if (stride is not None and stride < 1) or (window_frames is not None and window_frames < 1):
            return _error(400, "bad_window", f"stride={stride}, window_frames={window_frames}: at least 1 frame")
        budget = Budget(limits)
        in_flight.add(budget)
        work = asyncio.get_running_loop().run_in_executor(
            workers, functools.partial(predict_upload, video.file, name, budget, stride, window_frames, all_faces,
                                       plot))
        try:
            while not (await asyncio.wait({work}, timeout=DISCONNECT_POLL_S))[0]:
                if not budget.cancelled and await request.is_disconnected():
                    budget.cancel("the client disconnected")
            return work.result()
        except asyncio.CancelledError:  # uvicorn gave up on the connection (shutdown past its deadline)
            budget.cancel("the server is shutting down")
            raise
        finally:
            in_flight.discard(budget)

    @app.exception_handler(Exception)
    async def unexpected(request, exc):  # a bug answers 500 with its message; the service stays up
        return _error(500, "internal", f"{type(exc).__name__}: {exc}")

    def openapi() -> dict:  # FastAPI's document, plus the bearer scheme when a token is set
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema["info"]["x-fer-jax-limits"] = {**limits.to_json(), "max_upload_bytes": max_upload_bytes,
                                                  "max_requests": max_requests}
            if token is not None:
                schema.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer", "description": f"--token or {TOKEN_ENV}"}}
                for path, operations in schema["paths"].items():
                    for operation in operations.values():
                        operation["security"] = [] if path in _OPEN_PATHS else [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi

    def close() -> None:
        abandon_in_flight()
        workers.shutdown(wait=False, cancel_futures=True)
        batcher.close()

    app.router.on_shutdown.append(close)
    return app


def _description(limits: Limits, max_upload_bytes: int, max_requests: int, token: str | None) -> str:
    shown = {option(k): v for k, v in limits.to_json().items()}
    lines = ["Emotion recognition on uploaded videos: a timeline per face.", "",
             "Limits (each refusal names its option): " + ", ".join(f"`{k} {v}`" for k, v in shown.items())
             + f", `--max-upload-mb {max_upload_bytes >> 20}`, `--max-requests {max_requests}` "
             "(past it: 503 with Retry-After).",
             "Authentication: " + (f"`Authorization: Bearer TOKEN` on every route but /healthz (`--token` or "
                                   f"{TOKEN_ENV}); 401 without it." if token is not None else "none (no token set).")]
    return "\n".join(lines)


class _Gate:
    """ASGI middleware answering before the body is read: 401 without the token, 413 for a declared
    size over the limit, 503 + Retry-After past `max_requests` predictions in flight. (Plain ASGI,
    not BaseHTTPMiddleware, so the endpoint still sees its client disconnect.)"""

    def __init__(self, app, *, token: str | None, max_requests: int, max_upload_bytes: int):
        self.app, self.token, self.max_requests, self.max_upload_bytes = app, token, max_requests, max_upload_bytes
        self.active = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        if self.token is not None and path not in _OPEN_PATHS and not self._authorized(headers):
            return await _error(401, "unauthorized", "this server needs `Authorization: Bearer TOKEN` (its --token)",
                                headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
        if path != "/v1/predict":
            return await self.app(scope, receive, send)
        length = headers.get("content-length", "")
        # Declared size first: a too-large upload is refused before it is read (64 KiB of slack
        # for the multipart headers around the file).
        if length.isdigit() and int(length) > self.max_upload_bytes + 65536:
            return await _error(413, "too_large", f"upload of {length} bytes is over the limit of "
                                f"{self.max_upload_bytes} bytes (--max-upload-mb raises it)")(scope, receive, send)
        if self.active >= self.max_requests:
            return await _error(503, "busy", f"{self.active} requests in flight, the limit (--max-requests "
                                f"{self.max_requests} raises it); retry later", retry_after=True)(scope, receive, send)
        self.active += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1

    def _authorized(self, headers: dict) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


def _error(status: int, reason: str, message: str, retry_after: bool = False, headers: dict | None = None
           ) -> JSONResponse:
    headers = dict(headers or {})
    if retry_after:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return JSONResponse({"detail": message, "reason": reason}, status_code=status, headers=headers)


def _release_freed_memory() -> None:
    """Hand the heap freed by a request back to the system (glibc keeps it otherwise), so the
    resident size returns to its baseline after a large request."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def serve(checkpoint, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
          batch_size: int = 8, limits: Limits = SERVE_LIMITS, max_requests: int = DEFAULT_MAX_REQUESTS,
          token: str | None = None, shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS) -> None:
    """Serve until SIGINT/SIGTERM; then in-flight requests get `shutdown_seconds` to finish before
    they are abandoned (answered 503) and the process exits."""
    from fer_jax.infer.loader import load_model

    token = token or os.environ.get(TOKEN_ENV) or None
    app = create_app(load_model(checkpoint, batch_size=batch_size), max_upload_bytes=max_upload_mb << 20,
                     limits=limits, max_requests=max_requests, token=token)
    server = _DeadlineServer(uvicorn.Config(app, host=host, port=port, log_level="info",
                                            timeout_graceful_shutdown=int(shutdown_seconds) + 1),
                             app.state.abandon_in_flight, shutdown_seconds)
    access = "a bearer token" if token else "no token"
    print(f"fer-jax serve: http://{host}:{port}/  (POST /v1/predict, GET /healthz, /docs; {access}; "
          f"limits {json.dumps(limits.to_json())})", flush=True)
    server.run()


class _DeadlineServer(uvicorn.Server):
    """uvicorn, whose first exit signal also starts the clock on the requests still in flight."""

    def __init__(self, config, abandon, seconds: float):
        super().__init__(config)
        self.abandon, self.seconds = abandon, seconds

    def handle_exit(self, sig, frame) -> None:
        if not self.should_exit:
            timer = threading.Timer(self.seconds, self.abandon)
            timer.daemon = True
            timer.start()
        super().handle_exit(sig, frame)
