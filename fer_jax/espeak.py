"""Speech from text with espeak-ng's library, and espeak's own timing of every word it speaks.

The tests measure transcription against this timing and the narrative demo speaks its stories
with it. The timing comes from the synthesiser's events, not from the audio: a word starts at its
first phoneme and ends where the next phoneme or pause after its last one begins, so a pause after
a comma belongs to no word.
"""

from __future__ import annotations

import ctypes
import dataclasses
import threading

import numpy as np
import soxr

from fer_jax.errors import ConfigError

_WORD, _PHONEME = 1, 7  # espeak_EVENT_TYPE values (speak_lib.h)
_PUNCTUATION = ".,;:!?\"'()"
_LIST_TERMINATED = 0
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: samples come to the callback, nothing is played
_PHONEME_EVENTS = 0x0001  # espeakINITIALIZE_PHONEME_EVENTS
_CHARS_UTF8 = 1
_POS_CHARACTER = 1


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclasses.dataclass(frozen=True)
class SpokenWord:
    text: str  # as written in the input, punctuation stripped; may be a group of words espeak joins
    start: float  # seconds into the returned waveform
    end: float


@dataclasses.dataclass(frozen=True)
class Speech:
    wave: np.ndarray  # (N,) float32 in [-1, 1]
    sample_rate: int
    words: list[SpokenWord]


_lock = threading.Lock()  # espeak-ng keeps one global synthesiser per process
_state: dict = {}


def _library():
    if "lib" not in _state:
        try:
            lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError as e:
            raise ConfigError(f"espeak-ng's library is missing ({e}); install it: apt-get install espeak-ng") from None
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        _state["rate"] = lib.espeak_Initialize(_SYNCHRONOUS, 0, None, _PHONEME_EVENTS)
        if _state["rate"] <= 0:
            raise ConfigError("espeak-ng could not start (espeak_Initialize failed); is espeak-ng-data installed?")
        _state["lib"] = lib
    return _state["lib"]


def _word_spans(events: list[tuple], text: bytes, total: int) -> list[tuple[str, int, int]]:
    """(words, start sample, end sample) from the events (type, text position, length, sample, id).

    espeak speaks some short words as one group (e.g. "in the"), with one word event for the group:
    such a group is one span, its text running up to the next word event's. A span runs from its
    first phoneme to the next phoneme or pause after its last one."""
    starts: list[int] = []  # text position (1-based) of each word event
    phonemes: list[tuple[int, int]] = []  # (sample, index of the word, or -1 for a pause)
    for kind, position, _, sample, phoneme in events:
        if kind == _WORD:
            starts.append(position - 1)
        elif kind == _PHONEME:
            phonemes.append((sample, -1 if phoneme.startswith(b"_") or not starts else len(starts) - 1))
    spans = []
    for index, begin in enumerate(starts):
        mine = [i for i, (_, owner) in enumerate(phonemes) if owner == index]
        if not mine:
            continue
        stop = starts[index + 1] if index + 1 < len(starts) else len(text)
        words = " ".join(w.strip(_PUNCTUATION) for w in text[begin:stop].decode("utf-8", "replace").split())
        end = phonemes[mine[-1] + 1][0] if mine[-1] + 1 < len(phonemes) else total
        spans.append((words.strip(), phonemes[mine[0]][0], end))
    return [span for span in spans if span[0]]


def speak(text: str, voice: str = "en-us", words_per_minute: int = 160, pitch: int = 50,
          sample_rate: int | None = None) -> Speech:
    """`text` spoken by espeak-ng with `voice`, at `words_per_minute`, `pitch` 0..100 (50: the voice's
    own), resampled to `sample_rate` (default espeak's 22050 Hz), with each word's start and end."""
    chunks: list[np.ndarray] = []
    events: list[tuple] = []

    def collect(wav, count, event_list):
        if wav and count > 0:
            chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while event_list[i].type != _LIST_TERMINATED:
            e = event_list[i]
            events.append((e.type, e.text_position, e.length, e.sample, bytes(e.id)))
            i += 1
        return 0

    encoded = text.encode("utf-8")
    with _lock:
        lib = _library()
        callback = _Callback(collect)  # kept alive for the whole synthesis
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ConfigError(f"espeak-ng has no voice {voice!r} (see `espeak-ng --voices`)")
        lib.espeak_SetParameter(1, int(words_per_minute), 0)  # espeakRATE
        lib.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH
        lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        native = _state["rate"]
    wave = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768.0
    rate = sample_rate or native
    if rate != native:
        wave = soxr.resample(wave, native, rate, quality="HQ").astype(np.float32)
    words = [SpokenWord(w, s / native, e / native) for w, s, e in _word_spans(events, encoded, len(wave))]
    return Speech(wave, rate, words)
