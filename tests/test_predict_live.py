"""fer-jax predict --live: a paced stream through a pipe is followed in real time; a model too slow
for it makes frames drop, never queue, so the latency stays bounded."""

import io
import os
import threading
import time

import cv2
import numpy as np
import pytest

import predict_videos
from fer_jax.infer.live import LatestFrame, run_live, warm_up
from fer_jax.infer.loader import load_model

FPS, SECONDS = 25, 3


def _paced_y4m(fd: int, seconds: float, fps: int) -> threading.Thread:
    """A thread writing the astronaut as a YUV4MPEG2 stream into `fd` at `fps` frames a second, as a
    camera piped through `ffmpeg -f yuv4mpegpipe -` would; it closes `fd` at the end."""

    def write():
        with os.fdopen(fd, "wb") as pipe:
            start = time.monotonic()
            for i, frame in enumerate(predict_videos.astronaut_frames(seconds, fps)):
                if i == 0:
                    h, w = frame.shape[:2]
                    pipe.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
                delay = start + i / fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pipe.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
                pipe.flush()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def model(tiny_run):
    """The tiny run, its first (compiling) call made, and dlib's models loaded: run_live does this
    before opening its source, but the paced writer starts before run_live is called."""
    model = load_model(tiny_run, batch_size=1)
    warm_up(model)
    return model


def _live(model, **kwargs):
    read, write = os.pipe()
    writer = _paced_y4m(write, SECONDS, FPS)
    console = io.StringIO()
    with os.fdopen(read, "rb") as pipe:
        stats = run_live(pipe, model, out=console, print_every=0.0, **kwargs)
    writer.join(10)
    return stats, console.getvalue().splitlines()


def test_a_paced_pipe_is_followed_in_real_time(model):
    stats, lines = _live(model)
    print(stats.summary())
    assert stats.received == SECONDS * FPS and stats.source_fps == FPS
    assert stats.processed + stats.dropped == stats.received
    assert stats.windows > 0 and stats.real_time_factor > 0
    # The face's current emotion is on the console, named by the model's classes.
    assert any("face 0: " in line and any(c in line for c in model.class_names) for line in lines), lines[-3:]
    # Each prediction within a bounded time of its last frame: its own processing, not a queue's.
    assert max(stats.latencies) < 1.0


def test_a_model_too_slow_for_the_stream_drops_frames_instead_of_queueing(model):
    class Slow:  # the model, 0.2 s a prediction: 5 windows a second of a 25 fps stream
        def __getattr__(self, name):
            return getattr(model, name)

        def predict(self, examples):
            time.sleep(0.2)
            return model.predict(examples)

    stats, _ = _live(Slow(), stride=1)
    print(stats.summary())
    assert stats.dropped > stats.received // 3 and stats.processed + stats.dropped == stats.received
    assert stats.latencies, "no window was completed"
    # A queue would leave the last predictions seconds behind (75 frames at >= 0.2 s each);
    # dropping keeps each one within its own frame and prediction (+ one frame waiting).
    assert max(stats.latencies) < 0.2 + 0.5
    assert stats.real_time_factor < 1.0


def test_the_mailbox_keeps_only_the_newest_frame():
    box = LatestFrame()
    for i in range(5):
        box.put(i)
    assert box.take() == 4 and (box.received, box.dropped) == (5, 4)
    box.close()
    assert box.take() is None
