"""Pictures of a timeline: the probability of each class over time (gaps shaded), and the video
itself with each face's box and label drawn on it."""

from __future__ import annotations

import bisect
import io
import pathlib

import av
import cv2
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from fer_jax.infer.predict import value_name
from fer_jax.preprocess import video

MAX_TRACK_PANELS = 4
WORDS_PANEL_HEIGHT = 1.2  # inches, under the track panels when the timeline has words
WORD_ROWS = 3


def _by_track(timeline: dict) -> dict[int, list[dict]]:
    tracks: dict[int, list[dict]] = {}
    for w in timeline["windows"]:
        tracks.setdefault(w["track"], []).append(w)
    return tracks


def _broken(values, windows, stride: int) -> np.ndarray:
    """values (one per window) with NaN inserted where windows are missing, so lines break at gaps."""
    out = []
    for i, (value, w) in enumerate(zip(values, windows)):
        if i and w["start_frame"] - windows[i - 1]["start_frame"] > stride:
            out.append(np.nan)
        out.append(value)
    return np.array(out, float)


def plot_timeline(timeline: dict, path=None) -> bytes:
    """PNG of the timeline: one panel per face track (the largest tracks, at most MAX_TRACK_PANELS),
    each class's probability (or the valence) at the centre of every window, no-face spans shaded.
    Written to `path` when given; the PNG bytes are returned either way."""
    tracks = sorted(_by_track(timeline).items(), key=lambda kv: -len(kv[1]))[:MAX_TRACK_PANELS]
    classes = timeline["task"] == "classification"
    words = (timeline.get("words") or {}).get("words") or []
    # A Figure of its own, not pyplot's global state: the server draws from several threads at once.
    fig = Figure(figsize=(9, 2.6 * len(tracks) + 0.6 + (WORDS_PANEL_HEIGHT if words else 0)), dpi=100)
    ratios = [2.6] * len(tracks) + ([WORDS_PANEL_HEIGHT] if words else [])
    all_axes = fig.subplots(len(ratios), 1, squeeze=False, sharex=True, height_ratios=ratios)
    axes = all_axes[: len(tracks)]
    colours = matplotlib.colormaps["tab10"]
    for ax, (track, windows) in zip(axes[:, 0], tracks):
        centres = _broken([(w["start"] + w["end"]) / 2 for w in windows], windows, timeline["stride_frames"])
        if classes:
            for k, name in enumerate(timeline["class_names"]):
                values = _broken([w["probabilities"][name] for w in windows], windows, timeline["stride_frames"])
                ax.plot(centres, values, ".-", color=colours(k % 10), label=name, lw=1.4, ms=3)
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel("probability")
        else:
            value = value_name(timeline["task"])
            ax.plot(centres, _broken([w[value] for w in windows], windows, timeline["stride_frames"]), ".-",
                    label=value)
            ax.set_ylabel(value)
        for i, gap in enumerate(timeline["gaps"]):
            ax.axvspan(gap["start"], gap["end"], color="0.85", zorder=0, label="no face" if i == 0 else None)
        ax.set_xlim(0, max(timeline["duration"], 1e-3))
        ax.set_title(f"face track {track}", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if words:
        _draw_words(all_axes[-1, 0], words)
    all_axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{pathlib.Path(timeline['video']).name}: {timeline['model']}", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    data = buffer.getvalue()
    if path is not None:
        pathlib.Path(path).write_bytes(data)
    return data


def _draw_words(ax, words: list[dict]) -> None:
    """Each word at its start time, on WORD_ROWS staggered rows so neighbours do not overlap, with a
    tick spanning the time it is spoken."""
    for i, w in enumerate(words):
        y = WORD_ROWS - 1 - i % WORD_ROWS
        ax.plot([w["start"], w["end"]], [y - 0.3, y - 0.3], color="0.4", lw=1.5)
        ax.text(w["start"], y - 0.2, w["word"], fontsize=7, va="bottom", ha="left", clip_on=True)
    ax.set_ylim(-0.6, WORD_ROWS)
    ax.set_yticks([])
    ax.set_ylabel("words")
    ax.grid(alpha=0.3, axis="x")


def _label(window: dict, value: str) -> str:
    if "top_class" in window:
        return f"{window['top_class']} {window['top_probability']:.2f}"
    return f"{value} {window[value]:+.2f}"


def annotate_video(source, timeline: dict, frame_boxes: list, out_path) -> pathlib.Path:
    """Write the video again (H.264 MP4, streamed frame by frame) with each face's box and the label
    of the window nearest in time for its track. frame_boxes: per frame, [(track_id, box)], as
    `StreamStats.frame_boxes`. A face in a frame no window of its track covers is labelled
    "no prediction"."""
    tracks = {t: (np.array([(w["start"] + w["end"]) / 2 for w in ws]), ws) for t, ws in _by_track(timeline).items()}
    fps = timeline["fps"] or 25.0
    out_path = pathlib.Path(out_path)
    with av.open(str(out_path), "w") as out:
        stream = None
        for index, (frame, _) in enumerate(video.iter_video_frames(source)):
            if stream is None:
                stream = out.add_stream("libx264", rate=max(1, int(round(fps))))
                stream.pix_fmt = "yuv420p"
                stream.height, stream.width = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
            picture = np.ascontiguousarray(frame[: stream.height, : stream.width])
            time = index / fps
            for track, box in frame_boxes[index] if index < len(frame_boxes) else []:
                label = "no prediction"
                if track in tracks:
                    centres, windows = tracks[track]
                    nearest = _nearest(centres, time)
                    if windows[nearest]["start"] - 1e-6 <= time < windows[nearest]["end"]:  # it covers this frame
                        label = _label(windows[nearest], value_name(timeline["task"]))
                _draw(picture, box, f"#{track} {label}")
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return out_path


def _nearest(centres: np.ndarray, time: float) -> int:
    i = bisect.bisect_left(centres.tolist(), time)
    if i == 0:
        return 0
    if i == len(centres):
        return len(centres) - 1
    return i if centres[i] - time < time - centres[i - 1] else i - 1


def _draw(picture: np.ndarray, box, text: str) -> None:
    left, top, right, bottom = (int(round(v)) for v in box)
    thickness = max(1, picture.shape[0] // 240)
    cv2.rectangle(picture, (left, top), (right, bottom), (40, 220, 40), thickness)
    scale = max(0.3, picture.shape[0] / 800)
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    y = max(h + 2, top - 3)
    cv2.rectangle(picture, (left, y - h - 2), (left + w + 2, y + 2), (40, 220, 40), -1)
    cv2.putText(picture, text, (left + 1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
