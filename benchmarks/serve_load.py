"""Load test of `fer-jax serve`, on loopback only, bounded in requests and seconds.

Starts the real server process on a free 127.0.0.1 port, then N client threads send a seeded mix
of uploads for a fixed time:
    good        a 2 s astronaut video (a face throughout): must be answered 200
    bad         text named .mp4, and a video cut in half: 415 / 400
    oversized   ten black 4096x4096 H.264 frames (a few tens of KB): 413 from the header
A good request answered 503 (the concurrency bound) is retried after its Retry-After, at most
--retries times; one never answered 200 is lost. Reports throughput, p50/p99 latency per kind,
the status counts and the server's peak resident memory (sampled every 10 ms), as JSON.
Exits 1 when a 5xx other than the bound's 503 was answered, a good request was lost, or the peak
resident memory went over --rss-bound times the idle server's.

    python benchmarks/serve_load.py --checkpoint RUN [--clients 4 --seconds 60 --max-requests-total 2000]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
import predict_videos  # noqa: E402  (the tests' video makers: the astronaut clip, black frames)


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def uploads(folder: pathlib.Path) -> dict[str, tuple[str, bytes, int]]:
    """{name: (kind, bytes, expected status)}."""
    good = open(predict_videos.astronaut_video(folder / "good.mp4", seconds=2, fps=10), "rb").read()
    huge = (np.zeros((4096, 4096, 3), np.uint8) for _ in range(10))
    oversized = open(predict_videos.write_video(folder / "huge.mp4", huge, fps=10), "rb").read()
    return {"good.mp4": ("good", good, 200), "notes.mp4": ("bad", b"not a video\n" * 200, 415),
            "cut.mp4": ("bad", good[: len(good) // 2], 400), "huge.mp4": ("oversized", oversized, 413)}


def start_server(checkpoint: str, max_requests: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "fer_jax.cli", "serve", "--checkpoint", checkpoint,
                                "--host", "127.0.0.1", "--port", str(port), "--max-requests", str(max_requests)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=5).read()
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("the server did not start")
            time.sleep(0.5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="a run folder (e.g. from `fer-jax import fer2013`)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=60.0, help="clients start no request after this")
    p.add_argument("--max-requests-total", type=int, default=2000, help="and no more than this many")
    p.add_argument("--max-requests", type=int, default=8, help="the server's concurrency bound")
    p.add_argument("--retries", type=int, default=20, help="for a good request answered 503")
    p.add_argument("--rss-bound", type=float, default=2.0, help="peak RSS at most this times the idle RSS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the report JSON here")
    args = p.parse_args(argv)

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        mix = uploads(pathlib.Path(tmp))
    process, url = start_server(args.checkpoint, args.max_requests)
    idle = rss_kib(process.pid)
    peak, stop = [idle], threading.Event()

    def sample():
        while not stop.wait(0.01):
            peak[0] = max(peak[0], rss_kib(process.pid))

    lock = threading.Lock()
    latencies, statuses = collections.defaultdict(list), collections.Counter()
    issued, lost, unexpected = [0], [], []
    end = time.monotonic() + args.seconds

    def client(index: int):
        rng = random.Random(args.seed * 1000 + index)
        names = sorted(mix)
        while time.monotonic() < end:
            with lock:
                if issued[0] >= args.max_requests_total:
                    return
                issued[0] += 1
            name = rng.choice(names)
            kind, data, expected = mix[name]
            start = time.monotonic()
            for _ in range(args.retries + 1):
                try:
                    status, answer = predict_videos.post_video(url, name, data)
                except (OSError, urllib.error.URLError) as e:
                    status, answer = -1, {"detail": str(e)}
                with lock:
                    statuses[status] += 1
                if status != 503 or answer.get("reason") != "busy":
                    break
                time.sleep(2.0)
            took = time.monotonic() - start
            with lock:
                latencies[kind].append(took)
                if status != expected:
                    (lost if kind == "good" else unexpected).append({"name": name, "status": status,
                                                                     "detail": answer.get("detail")})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    after = rss_kib(process.pid)
    stop.set()
    process.terminate()
    process.wait(30)

    def percentile(values, q):
        return round(float(np.percentile(values, q)), 3) if values else None

    every = [v for vs in latencies.values() for v in vs]
    report = {
        "clients": args.clients, "seconds": round(wall, 1), "requests": len(every),
        "throughput_per_s": round(len(every) / wall, 2),
        "good_per_s": round(len(latencies["good"]) / wall, 2),
        "latency_s": {kind: {"n": len(vs), "p50": percentile(vs, 50), "p99": percentile(vs, 99)}
                      for kind, vs in sorted(latencies.items())} | {"all": {"p50": percentile(every, 50),
                                                                           "p99": percentile(every, 99)}},
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "answers_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "lost_good": lost, "unexpected": unexpected[:10],
        "rss_mib": {"idle": round(idle / 1024, 1), "peak": round(peak[0] / 1024, 1), "after": round(after / 1024, 1),
                    "bound": round(args.rss_bound * idle / 1024, 1)},
        "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    server_errors = sum(v for k, v in statuses.items() if k >= 500 and k != 503)
    ok = not server_errors and not lost and peak[0] <= args.rss_bound * idle
    print("PASS" if ok else "FAIL: 5xx, a lost good request or memory over the bound", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
