"""fer-jax serve: the real uvicorn server on a loopback port, spoken to over HTTP."""

import concurrent.futures
import json
import threading
import time
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import predict_videos
from fer_jax.infer.batching import BatchQueue
from fer_jax.infer.loader import load_model
from fer_jax.infer.predict import predict_video
from fer_jax.infer.serve import create_app

MAX_UPLOAD = 1 << 20


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_model(tiny_run)


@pytest.fixture(scope="module")
def server(model):
    with predict_videos.RunningServer(create_app(model, max_upload_bytes=MAX_UPLOAD, max_parallel=2)) as running:
        yield running


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = predict_videos.astronaut_video(tmp_path_factory.mktemp("serve") / "astronaut.mp4", seconds=2, fps=10)
    return path, open(path, "rb").read()


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers.get("content-type"), response.read()


def test_health_and_openapi(server, model):
    status, _, body = _get(f"{server.url}/healthz")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["window_frames"] == 8
    assert health["class_names"] == model.class_names
    _, _, body = _get(f"{server.url}/openapi.json")
    assert "/v1/predict" in json.loads(body)["paths"]


def test_predict_returns_the_timeline_of_the_command(server, model, clip):
    path, data = clip
    status, answer = predict_videos.post_video(server.url, "my clip.mp4", data, "?stride=2&plot=true")
    assert status == 200, answer
    expected, _ = predict_video(path, model, stride=2)
    assert answer["video"] == "my_clip.mp4"
    assert [w["start_frame"] for w in answer["windows"]] == [w["start_frame"] for w in expected["windows"]]
    for got, want in zip(answer["windows"], expected["windows"]):
        for name, p in want["probabilities"].items():
            assert got["probabilities"][name] == pytest.approx(p, abs=1e-5)
    import base64

    assert base64.b64decode(answer["plot_png"])[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "name, make, status, words",
    [
        ("empty.mp4", lambda data: b"", 400, "empty"),
        ("cut.mp4", lambda data: data[: len(data) // 2], 400, "cut short"),
        ("notes.mp4", lambda data: b"meeting notes, not a video\n" * 100, 415, "not a media file"),
    ],
)
def test_bad_uploads_get_4xx_with_a_clear_message(server, clip, name, make, status, words):
    got, answer = predict_videos.post_video(server.url, name, make(clip[1]))
    assert got == status and words in answer["detail"] and (name in answer["detail"] or got == 413), answer


def test_too_large_upload_is_refused_before_it_is_read(server):
    """A declared size over the limit is answered 413 after the headers, without taking the body."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall((f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {10 * MAX_UPLOAD}\r\n"
                   "Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n").encode())
        answer = s.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413") and "over the limit" in answer


def test_too_large_upload_of_unknown_size_is_413(server, clip):
    """Chunked (no declared size): counted while it is written to disk, refused at the limit."""
    import http.client

    data = clip[1] * (MAX_UPLOAD // len(clip[1]) + 2)
    head = b"--b\r\nContent-Disposition: form-data; name=\"video\"; filename=\"big.mp4\"\r\n\r\n"
    body = head + data + b"\r\n--b--\r\n"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    chunks = (body[i: i + 65536] for i in range(0, len(body), 65536))
    connection.request("POST", "/v1/predict", body=chunks, encode_chunked=True,
                       headers={"Content-Type": "multipart/form-data; boundary=b"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 413 and "big.mp4" in answer["detail"] and "over the limit" in answer["detail"]


def test_video_without_a_face_is_422(server, tmp_path):
    frames = (np.full((120, 160, 3), v, np.uint8) for v in range(60, 80))
    data = open(predict_videos.write_video(tmp_path / "wall.mp4", frames, fps=10), "rb").read()
    status, answer = predict_videos.post_video(server.url, "wall.mp4", data)
    assert status == 422 and answer["reason"] == "no_face" and "wall.mp4" in answer["detail"]


def test_eight_concurrent_requests_all_answered(server, clip):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        # Half of them also draw the plot: figures are drawn in several threads at once.
        answers = list(pool.map(lambda i: predict_videos.post_video(server.url, f"c{i}.mp4", clip[1],
                                                                    "?plot=true" if i % 2 else ""), range(8)))
    assert [s for s, _ in answers] == [200] * 8
    import base64

    import cv2

    shapes = {cv2.imdecode(np.frombuffer(base64.b64decode(a["plot_png"]), np.uint8), cv2.IMREAD_COLOR).shape
              for _, a in answers[1::2]}
    assert len(shapes) == 1 and min(next(iter(shapes))[:2]) > 200  # whole pictures, drawn side by side
    first = answers[0][1]["windows"]
    for _, answer in answers[1:]:
        assert [w["probabilities"] for w in answer["windows"]] == [w["probabilities"] for w in first]
    assert json.loads(_get(f"{server.url}/healthz")[2])["status"] == "ok"  # still up


def test_batch_queue_merges_waiting_requests_and_survives_errors():
    release, calls = threading.Event(), []

    def predict(examples):
        calls.append(len(examples))
        release.wait(10)
        if any(e["x"] < 0 for e in examples):
            raise ValueError("negative input")
        return np.array([[2.0 * e["x"]] for e in examples])

    queue = BatchQueue(predict, batch_size=8)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(queue.run, [{"x": 1.0}])
        while not calls:  # the worker is busy with the first request ...
            time.sleep(0.01)
        rest = [pool.submit(queue.run, [{"x": float(i)}, {"x": float(i) + 0.5}]) for i in (2, 3, 4)]
        time.sleep(0.2)  # ... while three more queue up
        release.set()
        assert first.result().tolist() == [[2.0]]
        assert [f.result().tolist() for f in rest] == [[[4.0], [5.0]], [[6.0], [7.0]], [[8.0], [9.0]]]
    assert calls == [1, 6] and queue.largest_batch_requests == 3  # the three waiting ones ran as one batch
    with pytest.raises(ValueError, match="negative"):
        queue.run([{"x": -1.0}])
    assert queue.run([{"x": 5.0}]).tolist() == [[10.0]]  # the worker lives on
    queue.close()


# Media-like starts (an MP4 'ftyp' box, RIFF, Matroska) make FFmpeg try harder than plain noise.
_HEADS = [b"", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", b"RIFF\x24\x00\x00\x00AVI ", b"\x1a\x45\xdf\xa3"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.sampled_from(_HEADS), body=st.binary(max_size=4096), name=st.text(max_size=40))
def test_fuzzed_uploads_get_4xx_never_a_crash(server, head, body, name):
    status, answer = predict_videos.post_video(server.url, name.replace('"', "").replace("\r", "").replace("\n", ""),
                                               head + body)
    assert 400 <= status < 500 and answer["detail"], (status, answer)
