"""One model, many callers: window batches from concurrent requests are queued and run together.

Each request's thread prepares its own windows (decoding and face tracking, the slow part) and
hands them to `BatchQueue.run`, which waits for the outputs. A single worker thread owns the model:
it takes whatever is queued, up to one batch, runs it as one call and hands each caller its rows.
So the compiled model is never called from two threads at once, and windows from different
videos share batches instead of each request padding its own.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading

import numpy as np


class BatchQueue:
    def __init__(self, predict, batch_size: int):
        """predict: list of examples -> outputs (N, ...), for any N (e.g. `InferenceModel.predict`)."""
        self.predict, self.batch_size = predict, batch_size
        self._queue: queue.Queue = queue.Queue()
        self.batches_run = 0
        self.largest_batch_requests = 0  # the most requests one model call served (for tests, logs)
        self._worker = threading.Thread(target=self._loop, name="fer-jax-batcher", daemon=True)
        self._worker.start()

    def run(self, examples: list[dict]) -> np.ndarray:
        """Outputs for `examples`, computed by the worker thread (blocks until they are ready)."""
        if not examples:
            return np.zeros((0,), np.float32)
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((examples, done))
        return done.result()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=10)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            taken, size = [item], len(item[0])
            while size < self.batch_size:  # fill the batch with whatever else is waiting
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                taken.append(more)
                size += len(more[0])
            self._run(taken)

    def _run(self, taken) -> None:
        examples = [e for chunk, _ in taken for e in chunk]
        try:
            outputs = self.predict(examples)
        except Exception as e:  # the callers get the error; the worker lives on
            for _, done in taken:
                done.set_exception(e)
            return
        self.batches_run += 1
        self.largest_batch_requests = max(self.largest_batch_requests, len(taken))
        start = 0
        for chunk, done in taken:
            done.set_result(outputs[start: start + len(chunk)])
            start += len(chunk)
