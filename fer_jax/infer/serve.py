"""`fer-jax serve`: the predict command as an HTTP service (FastAPI + uvicorn), with a web page.

    GET  /             a page to upload a video and see its timeline plot and windows (web/index.html)
    GET  /healthz      {"status": "ok", model, step, task, class_names, ...}
    POST /v1/predict   multipart field "video" -> the timeline JSON of `fer_jax.infer.predict`;
                       query: stride, window_frames (frames), all_faces (bool),
                       plot (bool: add "plot_png", base64)
    GET  /docs, /openapi.json   FastAPI's OpenAPI document

The model is restored and compiled once, at start. Requests prepare their windows in parallel
(at most `max_parallel` at a time; the others wait their turn) and share one batching worker
for the model (`batching.BatchQueue`). Errors a client causes are 4xx with a message naming the
uploaded file: 413 too large, 415 not a video, 400 empty or cut short, 422 no face / no audio.
"""

from __future__ import annotations

import base64
import os
import pathlib
import re
import tempfile
import threading

import fastapi
import uvicorn
from fastapi.responses import HTMLResponse, JSONResponse

from fer_jax.errors import FerJaxError, InputError
from fer_jax.infer.batching import BatchQueue
from fer_jax.infer.loader import InferenceModel
from fer_jax.infer.predict import predict_video
from fer_jax.infer.timeline import plot_timeline

DEFAULT_MAX_UPLOAD_MB = 200
# InputError reason -> HTTP status.
STATUS_OF_REASON = {
    "undecodable": 415, "no_video_stream": 415, "unsupported_codec": 415,
    "zero_byte": 400, "truncated": 400, "no_frames": 400, "missing": 400,
    "no_face": 422, "no_audio": 422,
}
_CHUNK = 1 << 20
_INDEX = pathlib.Path(__file__).parent / "web" / "index.html"


def _safe_name(name: str | None) -> str:
    """The client's file name, reduced to characters safe in a path (kept so errors name it)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(name or "")).strip("._") or "upload"
    return base[:100]


def create_app(model: InferenceModel, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB << 20,
               max_parallel: int | None = None) -> fastapi.FastAPI:
    app = fastapi.FastAPI(title="fer-jax", version="1",
                          description="Emotion recognition on uploaded videos: a timeline per face.")
    model.warm_up()  # compile now, not on the first request
    batcher = BatchQueue(model.predict, model.batch_size)
    slots = threading.BoundedSemaphore(max_parallel or os.cpu_count() or 1)
    app.state.model, app.state.batcher = model, batcher

    @app.middleware("http")
    async def refuse_large_bodies(request: fastapi.Request, call_next):
        # Declared size first: a too-large upload is refused before it is read.
        length = request.headers.get("content-length")
        # (64 KiB of slack for the multipart headers around the file.)
        if request.url.path == "/v1/predict" and length and length.isdigit() and int(length) > max_upload_bytes + 65536:
            return _error(413, "too_large", f"upload of {length} bytes is over the limit of {max_upload_bytes} bytes")
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        return HTMLResponse(_INDEX.read_text())

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "model": model.config.model.name, "checkpoint": str(model.workdir), "step": model.step,
                "task": model.task, "class_names": model.class_names, "window_frames": model.clip.clip_frames,
                "max_upload_bytes": max_upload_bytes, "batches_run": batcher.batches_run}

    @app.post("/v1/predict")
    def predict(video: fastapi.UploadFile, stride: int | None = None, window_frames: int | None = None,
                all_faces: bool = False, plot: bool = False):
        name = _safe_name(video.filename)
        if (stride is not None and stride < 1) or (window_frames is not None and window_frames < 1):
            return _error(400, "bad_window", f"stride={stride}, window_frames={window_frames}: at least 1 frame")
        with tempfile.TemporaryDirectory(prefix="fer-jax-serve-") as tmp:
            path = pathlib.Path(tmp) / name
            size = 0
            with open(path, "wb") as f:
                while chunk := video.file.read(_CHUNK):
                    size += len(chunk)
                    if size > max_upload_bytes:
                        return _error(413, "too_large", f"{name}: upload is over the limit of {max_upload_bytes} bytes")
                    f.write(chunk)
            try:
                with slots:
                    timeline, _ = predict_video(path, model, stride=stride, all_faces=all_faces, window=window_frames,
                                                run_batch=batcher.run)
            except InputError as e:
                return _error(STATUS_OF_REASON.get(e.reason, 400), e.reason, f"{name}: {e.message}")
            except FerJaxError as e:  # e.g. a model that reads features its preprocessing does not make
                return _error(400, "unusable", f"{name}: {e}")
        timeline["video"] = name
        if plot:
            timeline["plot_png"] = base64.b64encode(plot_timeline(timeline)).decode("ascii")
        return timeline

    @app.exception_handler(Exception)
    async def unexpected(request, exc):  # a bug answers 500 with its message; the service stays up
        return _error(500, "internal", f"{type(exc).__name__}: {exc}")

    app.router.on_shutdown.append(batcher.close)
    return app


def _error(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "reason": reason}, status_code=status)


def serve(checkpoint, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
          batch_size: int = 8) -> None:
    from fer_jax.infer.loader import load_model

    app = create_app(load_model(checkpoint, batch_size=batch_size), max_upload_bytes=max_upload_mb << 20)
    print(f"fer-jax serve: http://{host}:{port}/  (POST /v1/predict, GET /healthz, /docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")

