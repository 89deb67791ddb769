"""Small video files written with PyAV: a real face (the astronaut photograph) moving across the
frame, with a tone for sound."""

import fractions
import pathlib

import av
import numpy as np
import skimage.data

FPS = 25
# Frame times (ms) of a variable-frame-rate clip of 16 frames: steps of 40 ms with gaps.
VFR_PTS_MS = [0, 40, 80, 200, 240, 400, 440, 480, 700, 740, 780, 820, 900, 940, 1200, 1240]


def moving_face_frames(n: int = 16, size=(160, 160), top: int = 22, left: int = 124, blank_first: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8, size = (H, W): a window sliding 2 px right and down per frame over the
    astronaut's face (at the default place and size the whole face crop stays inside every frame);
    the first `blank_first` frames are plain gray (no face)."""
    image = skimage.data.astronaut()
    h, w = size
    frames = np.stack([image[top + 2 * i : top + 2 * i + h, left + 2 * i : left + 2 * i + w] for i in range(n)])
    frames[:blank_first] = 128
    return frames


def write_clip(path, frames, *, fmt="avi", vcodec="mpeg4", fps=FPS, pts_ms=None, rotation=None, audio=(16000, 1)):
    """A clip with PyAV: `audio` (rate, channels) a 220 Hz tone as long as the video (None: silent
    file without an audio stream); `pts_ms` frame times for a variable frame rate; `rotation` the
    display-matrix angle (degrees counterclockwise a player turns the picture)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t, height, width, _ = frames.shape
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(vcodec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if pts_ms is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = None
        if audio is not None:
            rate, channels = audio
            acodec = "pcm_s16le" if fmt == "avi" else "aac"
            sound = out.add_stream(acodec, rate=rate, layout="stereo" if channels == 2 else "mono")
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            if pts_ms is not None:
                vf.pts, vf.time_base = pts_ms[i], fractions.Fraction(1, 1000)
            out.mux(stream.encode(vf))
        out.mux(stream.encode())
        if sound is not None:
            seconds = (pts_ms[-1] / 1000 + 1 / fps) if pts_ms else t / fps
            samples = np.arange(int(rate * seconds)) / rate
            tone = np.tile(0.3 * np.sin(2 * np.pi * 220 * samples), (channels, 1)).astype(np.float32)
            chunk = sound.codec_context.frame_size or 1024
            for start in range(0, tone.shape[1], chunk):
                piece = np.ascontiguousarray(tone[:, start : start + chunk])
                if acodec == "pcm_s16le":
                    piece = (piece * 32767).astype(np.int16).T.reshape(1, -1)
                    af = av.AudioFrame.from_ndarray(piece, format="s16", layout=sound.layout.name)
                else:
                    af = av.AudioFrame.from_ndarray(piece, format="fltp", layout=sound.layout.name)
                af.sample_rate, af.pts = rate, start
                out.mux(sound.encode(af))
            out.mux(sound.encode())
    return path


# The two-tone stereo track of write_face_mp4.
AUDIO_RATE = 44100
LEFT_HZ, LEFT_AMP = 440.0, 0.4
RIGHT_HZ, RIGHT_AMP = 1000.0, 0.2


def write_face_mp4(path, frames=None, audio=True, video_stream=True, faststart=False):
    """An H.264/AAC MP4 of `frames` (default 20 of moving_face_frames) at FPS; the audio is stereo,
    LEFT_HZ on the left, RIGHT_HZ on the right."""
    frames = moving_face_frames(20) if frames is None else frames
    height, width = frames.shape[1:3]
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        # All streams must exist before the first packet is muxed (that writes the header).
        if video_stream:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if audio:
            sound = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        if video_stream:
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
            container.mux(stream.encode())
        if audio:
            t = np.arange(int(AUDIO_RATE * len(frames) / FPS)) / AUDIO_RATE
            stereo = np.stack([LEFT_AMP * np.sin(2 * np.pi * LEFT_HZ * t), RIGHT_AMP * np.sin(2 * np.pi * RIGHT_HZ * t)])
            stereo = stereo.astype(np.float32)
            for start in range(0, t.size, 1024):
                samples = np.ascontiguousarray(stereo[:, start : start + 1024])
                chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = AUDIO_RATE, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path
