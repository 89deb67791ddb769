"""Memory stays flat with video length: predict a 10 s and a 60 s video, compare peak RSS."""

import json
import os
import subprocess
import sys

import pytest

import predict_videos

SIZE, FPS = (640, 480), 4
# The child restores and compiles the model, then predicts while a thread samples its resident
# set every 5 ms: the streaming peak, which compilation's own (larger, transient) peak cannot hide.
# It also reports ru_maxrss, the peak of the whole process.
CHILD = """
import json, os, resource, sys, threading
from fer_jax.infer.loader import load_model
from fer_jax.infer.predict import predict_video

def rss_kib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

model = load_model(sys.argv[2])
model.warm_up()
peak, stop = [rss_kib()], threading.Event()
def sample():
    while not stop.wait(0.005):
        peak[0] = max(peak[0], rss_kib())
sampler = threading.Thread(target=sample)
sampler.start()
timeline, _ = predict_video(sys.argv[1], model)
stop.set()
sampler.join()
print(json.dumps({"streaming_peak_kib": peak[0], "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "windows": len(timeline["windows"])}))
"""


def _measure(video, run):
    done = subprocess.run([sys.executable, "-c", CHILD, str(video), run], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("short_s, long_s", [(10, 60)])
def test_peak_memory_does_not_grow_with_video_length(tiny_run, tmp_path, short_s, long_s, record_property):
    runs = {}
    for seconds in (short_s, long_s):
        video = predict_videos.astronaut_video(tmp_path / f"{seconds}s.mp4", seconds=seconds, fps=FPS, size=SIZE)
        runs[seconds] = _measure(video, tiny_run)
    mib = {s: {k: round(v / 1024, 1) for k, v in r.items() if k.endswith("kib")} for s, r in runs.items()}
    record_property("rss_mib", mib)
    print("RSS MiB:", mib, "windows:", {s: r["windows"] for s, r in runs.items()})
    short, long = runs[short_s], runs[long_s]
    assert long["windows"] > 5 * short["windows"]  # the long video really was read to its end
    # Holding the long video's decoded frames would add this much: the bound below can fail.
    frames_kib = long_s * FPS * SIZE[0] * SIZE[1] * 3 / 1024
    assert frames_kib > 0.2 * short["streaming_peak_kib"]
    for key in ("streaming_peak_kib", "maxrss_kib"):
        assert abs(long[key] - short[key]) < 0.2 * short[key], (key, mib)
