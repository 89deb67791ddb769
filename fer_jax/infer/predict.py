"""`fer-jax predict`: a video -> a timeline of predictions per window and face.

The timeline is a plain dict (what `--out` writes as JSON and the REST service returns):

    video, checkpoint, model, task, value, class_names, fps, duration, num_frames, window_frames,
    stride_frames, tracks (ids), frames_with_face,
    gaps     [{"start", "end"}] seconds where no face was found (nothing is predicted there)
    windows  [{"track", "start", "end", "start_frame", "end_frame", "box": [l, t, r, b],
               "probabilities": {class: p}, "top_class", "top_probability"}]     classifiers
             [..., V: mean, V + "_steps": [per output step]]                      regressors, V =
             value_name(task): "valence" (SEND's per-step valence), "score" (a score per video)
    words    (with `--words`) {"source", "language", "words": [{"word", "start", "end"}]}: what is
             said, from subtitles beside the video or Whisper (fer_jax.preprocess.transcribe)
"""

from __future__ import annotations

import csv
import json
import pathlib

import numpy as np

from fer_jax.errors import ConfigError, InputError
from typing import TYPE_CHECKING

from fer_jax.infer.limits import Budget
from fer_jax.infer.stream import StreamStats, iter_windows

if TYPE_CHECKING:  # (not imported: an ONNX model predicts without JAX, see onnx_model.py)
    from fer_jax.infer.loader import InferenceModel


def value_name(task: str) -> str:
    """What a regressing model's output is called in timelines, CSV and plots: the target it learnt."""
    return {"regression": "valence", "score": "score"}.get(task, "value")


def default_stride(window: int) -> int:
    """Half a window: every frame is seen by two windows."""
    return max(1, window // 2)


def predict_video(path, model: "InferenceModel", *, stride: int | None = None, all_faces: bool = False,
                  window: int | None = None, run_batch=None, budget: Budget | None = None) -> tuple[dict, StreamStats]:
    """The timeline of `path` (see the module docstring) and the stream's statistics (per-frame
    boxes, for annotation). Windows go to the model `model.batch_size` at a time, as they come,
    so neither the frames nor the windows of the whole video are ever held.

    window: source frames per window (default the model's clip length); longer windows are
    sampled down to the model's frames as the records sample a clip (first and last kept), e.g.
    to span the duration of the training clips.
    run_batch: how a list of window inputs is run (default `model.predict`); the server passes
    its shared batching queue. Raises InputError "no_face" when no window has a face.
    budget: limits on the video and the work, and the flag that stops it (`fer_jax.infer.limits`).
    """
    window = model.clip.clip_frames if window is None else window
    stride = default_stride(window) if stride is None else stride
    if stride < 1:
        raise ConfigError(f"--stride {stride}: must be at least 1 frame")
    if window < 1 or (window < model.clip.clip_frames and not model.clip.variable_length):
        raise ConfigError(f"--window-frames {window}: the model reads {model.clip.clip_frames} frames per clip; "
                          "a window must hold at least that many")
    run_batch = run_batch or model.predict
    stats = StreamStats()
    records, pending = [], []

    def flush():
        outputs = run_batch([w.inputs for w in pending])
        records.extend(_record(w, out, model) for w, out in zip(pending, outputs))
        pending.clear()

    for win in iter_windows(path, model.clip, model.keys, window=window, stride=stride, all_faces=all_faces,
                            stats=stats, budget=budget):
        pending.append(win)
        if len(pending) == model.batch_size:
            flush()
    if pending:
        flush()
    if not records:
        found = (f"a face in {stats.frames_with_face} of {stats.num_frames} frames, never in {window} frames in a row"
                 if stats.frames_with_face else f"no face in any of its {stats.num_frames} frames")
        raise InputError(path, "no_face", f"nothing to predict: {found} ({model.clip.detector} detector, "
                         f"upsample={model.clip.upsample}; faces smaller than {80 / 2 ** model.clip.upsample:.0f} px "
                         f"are not found)")
    timeline = {
        "video": str(path),
        "checkpoint": str(model.workdir),
        "step": model.step,
        "model": model.model_name,
        "task": model.task,
        "value": value_name(model.task),  # a regressor's output key in each window (below)
        "class_names": list(model.class_names),
        "fps": round(stats.fps, 4),
        "duration": round(stats.duration, 4),
        "num_frames": stats.num_frames,
        "frames_with_face": stats.frames_with_face,
        "window_frames": window,
        "stride_frames": stride,
        "tracks": sorted({r["track"] for r in records}),
        "gaps": [{"start": round(a, 4), "end": round(b, 4)} for a, b in stats.no_face_spans],
        "windows": records,
    }
    return timeline, stats


def add_words(timeline: dict, video, asr_model=None) -> dict:
    """The timeline with the video's timed words under "words" (subtitles beside it, else Whisper)."""
    from fer_jax.preprocess.transcribe import transcribe_video

    timeline["words"] = transcribe_video(video, asr_model).to_json()
    return timeline


def _record(win, output: np.ndarray, model: "InferenceModel") -> dict:
    record = {
        "track": win.track_id,
        "start": round(win.start_time, 4),
        "end": round(win.end_time, 4),
        "start_frame": win.start_frame,
        "end_frame": win.end_frame,
        "box": [round(float(v), 1) for v in win.box],
    }
    if model.task == "classification":
        top = int(np.argmax(output))
        record["probabilities"] = {name: round(float(p), 6) for name, p in zip(model.class_names, output)}
        record["top_class"] = model.class_names[top]
        record["top_probability"] = round(float(output[top]), 6)
    else:
        name = value_name(model.task)
        record[name] = round(float(np.mean(output)), 6)
        record[f"{name}_steps"] = [round(float(v), 6) for v in np.ravel(output)]
    return record


def write_json(timeline: dict, path) -> None:
    pathlib.Path(path).write_text(json.dumps(timeline, indent=1))


def write_csv(timeline: dict, path) -> None:
    """One row per window: track, times, frames, box, then each class probability (or the value)."""
    head = ["track", "start", "end", "start_frame", "end_frame", "box_left", "box_top", "box_right", "box_bottom"]
    classes = timeline["task"] == "classification"
    value = value_name(timeline["task"])
    tail = (["top_class", "top_probability"] + [f"p_{c}" for c in timeline["class_names"]]) if classes else [value]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(head + tail)
        for w in timeline["windows"]:
            row = [w["track"], w["start"], w["end"], w["start_frame"], w["end_frame"], *w["box"]]
            if classes:
                row += [w["top_class"], w["top_probability"]] + [w["probabilities"][c] for c in timeline["class_names"]]
            else:
                row.append(w[value])
            writer.writerow(row)
