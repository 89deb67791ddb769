"""fer-jax serve under abuse: the real `fer-jax serve` process on a loopback port, with a token,
two requests at most in flight and a 2 s shutdown deadline. The tests run in file order and the
last one stops the server with SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import predict_videos
from fer_jax.cli import main
from fer_jax.infer.limits import SERVE_LIMITS
from fer_jax.infer.tracks import FaceTracker

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_REQUESTS, SHUTDOWN_S = 2, 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"  # a file, not a pipe nobody reads: it cannot fill up
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fer_jax.cli", "serve", "--checkpoint", str(tiny_run), "--port", str(port),
             "--token", TOKEN, "--max-requests", str(MAX_REQUESTS), "--shutdown-seconds", str(SHUTDOWN_S)],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # importing JAX and compiling, on a loaded machine
    while True:
        try:
            _health(url)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("fer-jax serve did not start: " + log.read_text()[-3000:])
            time.sleep(0.2)
    process.url = url
    yield process
    if process.poll() is None:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def slow_video(tmp_path_factory):
    """300 black 640x480 frames: a face searched for in every one (tens of seconds), ~12 KB."""
    frames = (np.zeros((480, 640, 3), np.uint8) for _ in range(300))
    path = predict_videos.write_video(tmp_path_factory.mktemp("slow") / "black.mp4", frames, fps=10)
    return open(path, "rb").read()


def _start_upload(url: str, data: bytes) -> socket.socket:
    """Send a whole upload with the token and leave the connection open, the answer unread."""
    body, content_type = predict_videos.multipart_body("slow.mp4", data)
    s = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30)
    s.sendall((f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    return s


def _wait_for(condition, seconds: float) -> float:
    """Seconds until `condition()` held; fails past `seconds`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_without_the_token_every_route_but_healthz_is_401(server):
    assert _health(server.url)["token_required"] is True
    for path in ("/", "/openapi.json"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}{path}", timeout=10)
        assert refused.value.code == 401 and refused.value.headers["WWW-Authenticate"] == "Bearer"
    status, answer = predict_videos.post_video(server.url, "a.mp4", b"x" * 100)
    assert status == 401 and "Bearer" in answer["detail"]
    status, answer = predict_videos.post_video(server.url, "a.mp4", b"x" * 100, headers={"Authorization": "Bearer no"})
    assert status == 401
    request = urllib.request.Request(f"{server.url}/openapi.json", headers=AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        document = json.loads(response.read())
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/v1/predict"]["post"]["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert document["info"]["x-fer-jax-limits"]["max_pixels"] == SERVE_LIMITS.max_pixels
    assert "--max-pixels" in document["info"]["description"]


def test_huge_frames_refused_within_5_s_with_memory_below_twice_idle(server, tmp_path):
    """Ten black 4096x4096 frames (tens of KB): decoding and searching them took minutes and GBs."""
    frames = (np.zeros((4096, 4096, 3), np.uint8) for _ in range(10))
    data = open(predict_videos.write_video(tmp_path / "huge.mp4", frames, fps=10), "rb").read()
    idle = _rss_kib(server.pid)
    peak, stop = [idle], threading.Event()

    def sample():
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _rss_kib(server.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.monotonic()
    status, answer = predict_videos.post_video(server.url, "huge.mp4", data, headers=AUTH)
    took = time.monotonic() - start
    stop.set()
    sampler.join()
    assert status == 413 and answer["reason"] == "frame_too_large", answer
    assert "4096x4096" in answer["detail"] and "--max-pixels" in answer["detail"] and "huge.mp4" in answer["detail"]
    assert took < 5.0
    assert peak[0] < 2 * idle, (peak[0], idle)


def test_the_concurrency_bound_answers_503_with_retry_after(server, slow_video):
    uploads = [_start_upload(server.url, slow_video) for _ in range(MAX_REQUESTS)]
    try:
        _wait_for(lambda: _health(server.url)["in_flight"] == MAX_REQUESTS, 20)
        try:
            status, answer = predict_videos.post_video(server.url, "one.mp4", slow_video, headers=AUTH)
        except (ConnectionError, urllib.error.URLError) as e:  # refused before the body was taken
            pytest.fail(f"no 503 answer: {e}")
        assert status == 503 and answer["reason"] == "busy" and "--max-requests" in answer["detail"]
    finally:
        for s in uploads:
            s.close()
    _wait_for(lambda: _health(server.url)["in_flight"] == 0, 2.0 + 1.0)


def test_a_client_that_disconnects_frees_its_worker_within_2_s(server, slow_video):
    upload = _start_upload(server.url, slow_video)
    _wait_for(lambda: _health(server.url)["in_flight"] == 1, 20)
    time.sleep(1.0)  # well into the work (tens of seconds of it)
    upload.close()
    freed = _wait_for(lambda: _health(server.url)["in_flight"] == 0, 2.0)
    print(f"worker freed {freed:.2f} s after the disconnect")


def test_sigterm_during_a_long_request_exits_within_the_deadline(server, slow_video):
    upload = _start_upload(server.url, slow_video)
    _wait_for(lambda: _health(server.url)["in_flight"] == 1, 20)
    start = time.monotonic()
    server.send_signal(signal.SIGTERM)
    upload.settimeout(SHUTDOWN_S + 5)
    answer = b""
    while chunk := upload.recv(65536):  # the head and the body can come apart; the server then closes
        answer += chunk
    answer = answer.decode()
    server.wait(SHUTDOWN_S + 5)
    took = time.monotonic() - start
    upload.close()
    # The request was abandoned at the deadline with a 503, and the process exited right after it.
    assert answer.startswith("HTTP/1.1 503") and "shutting down" in answer, answer
    assert took < SHUTDOWN_S + 2.0, took
    assert server.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down


def test_frames_over_the_detection_size_are_downscaled_for_detection_only():
    """The astronaut at 1024x1024 found at 512x512 for detection: boxes and landmarks come back in
    full-frame pixels, where a full-size detection puts them."""
    import cv2
    import skimage.data

    frame = cv2.resize(skimage.data.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    full = FaceTracker(detect_pixels=None).update(frame)
    small = FaceTracker(detect_pixels=512 * 512).update(frame)
    assert len(full) == len(small) == 1
    width = full[0].box[2] - full[0].box[0]
    # The detector's boxes step by its window's pyramid scale at either resolution; a box found on
    # the half-size image is off by at most a few of its pixels, doubled: within 10% of the face.
    assert np.abs(small[0].box - full[0].box).max() < 0.1 * width
    assert np.abs(small[0].landmarks - full[0].landmarks).mean() < 0.05 * width


def test_predict_refuses_a_video_over_its_limits_naming_the_option(tiny_run, tmp_path, capsys):
    video = predict_videos.astronaut_video(tmp_path / "clip.mp4", seconds=2, fps=10)
    code = main(["predict", video, "--checkpoint", str(tiny_run), "--max-frames", "5", "--out",
                 str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert code == 2 and "20 frames" in err and "limit of 5" in err and "--max-frames raises it" in err
    code = main(["predict", video, "--checkpoint", str(tiny_run), "--max-pixels", "1000"])
    err = capsys.readouterr().err
    assert code == 2 and "160x120" in err and "--max-pixels raises it" in err
