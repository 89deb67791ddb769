"""Videos for the predict, export and serve tests, made from scikit-image's astronaut photograph.

The face smiles throughout; the camera drifts and zooms a little (a seeded random walk), so the
tracker and the aligner work on moving frames, not one frame repeated.
"""

from __future__ import annotations

import fractions
import json
import itertools

import av
import cv2
import numpy as np
import skimage.data

# The astronaut's face sits around (218, 150) in the 512x512 photograph.
_FACE_XY = (218.0, 150.0)


def astronaut_frames(seconds: float, fps: int, size=(160, 120), seed: int = 0, blank=()):
    """Yield (H, W, 3) uint8 RGB frames: a drifting, slightly zooming view of the astronaut's face.

    blank: (start_s, end_s) spans shown as a flat grey frame (no face)."""
    photo = skimage.data.astronaut()
    rng = np.random.default_rng(seed)
    width, height = size
    offset = np.zeros(2)
    for i in range(int(round(seconds * fps))):
        t = i / fps
        if any(a <= t < b for a, b in blank):
            yield np.full((height, width, 3), 128, np.uint8)
            continue
        offset = np.clip(offset + rng.normal(0, 1.5, 2), -12, 12)
        zoom = 1.0 + 0.05 * np.sin(2 * np.pi * t / 3.0)
        scale = zoom * width / 300.0  # a 300 px wide view of the photograph
        cx, cy = _FACE_XY[0] + offset[0], _FACE_XY[1] + offset[1]
        matrix = np.array([[scale, 0, width / 2 - scale * cx], [0, scale, height / 2 - scale * cy]])
        yield cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def write_video(path, frames, fps: int, audio_hz: float | None = None, sample_rate: int = 16000) -> str:
    """Write frames as H.264 MP4 (with a sine tone as AAC audio when audio_hz is given)."""
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.height, stream.width = first.shape[:2]
        stream.options = {"preset": "ultrafast"}
        audio = None
        if audio_hz:
            audio = out.add_stream("aac", rate=sample_rate)
            audio.layout = "mono"
        count = 0
        for frame in itertools.chain([first], frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
            count += 1
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            t = np.arange(int(count / fps * sample_rate)) / sample_rate
            wave = (0.3 * np.sin(2 * np.pi * audio_hz * t)).astype(np.float32)
            chunk = 1024
            for start in range(0, wave.size, chunk):
                piece = wave[start:start + chunk][None]
                frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                frame.time_base = fractions.Fraction(1, sample_rate)
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return str(path)


def astronaut_video(path, seconds: float = 2.0, fps: int = 10, size=(160, 120), blank=(), audio_hz=None) -> str:
    return write_video(path, astronaut_frames(seconds, fps, size, blank=blank), fps, audio_hz)


def train_tiny_run(tiny_dataset, workdir) -> str:
    """Train the trainer tests' tiny model for a few steps and declare how its inputs are made.

    tiny_clips is not a fer-jax corpus builder (its clips are synthetic squares, not faces from
    the clip preprocessing), so nothing records a ClipConfig for it: the run says it in
    preprocessing.json, as any run on a corpus built outside fer-jax must. The model is what
    matters here, not its accuracy: predict, export and serve are tested on its windows.
    """
    import dataclasses
    import json

    from fer_jax.infer.loader import PREPROCESSING_FILE
    from fer_jax.preprocess.clip import ClipConfig
    from fer_jax.train.loop import train
    from helpers.training import tiny_config

    # The trainer tests' model and batch sizes, so the compiled programs are shared.
    config = tiny_config(tiny_dataset, workdir, num_epochs=1)
    train(config, stop_after_steps=2)  # stopped as a preempted run is: a checkpoint, no evaluation
    clip = ClipConfig(num_frames=8, size=16, grayscale=True, need_audio=False)
    preprocessing = {"clip": dataclasses.asdict(clip), "class_names": ["right", "down", "still"]}
    (workdir / PREPROCESSING_FILE).write_text(json.dumps(preprocessing))
    return str(workdir)


class RunningServer:
    """The real uvicorn server with `app`, in a thread, on a free loopback port (a context manager)."""

    def __init__(self, app):
        import socket
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def multipart_body(name: str, data: bytes) -> tuple[bytes, str]:
    """(body, content type) of a multipart upload of `data` as the field "video" named `name`."""
    import uuid

    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"{name}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_video(url: str, name: str, data: bytes, query: str = "", headers: dict | None = None) -> tuple[int, dict]:
    """POST `data` as the multipart field "video" named `name`; (status, JSON answer)."""
    import urllib.error
    import urllib.request

    body, content_type = multipart_body(name, data)
    request = urllib.request.Request(f"{url}/v1/predict{query}", data=body, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
