"""The voice: a synthetic speaker whose prosody (pitch, rate, loudness, timbre) depends on the class."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from data_builders.demo_av.synth.scene import smooth_noise
from data_builders.demo_av.synth.settings import CLASSES, SAMPLE_RATE, VOICE_CONFUSIONS, confused_with



@dataclasses.dataclass(frozen=True)
class Prosody:
    pitch_level: float  # mean pitch as a multiple of the speaker's base pitch
    accent_st: float  # spread of per-syllable pitch accents, semitones
    glide_st: float  # pitch change over the utterance, semitones (> 0 rising, < 0 falling)
    syllables_per_s: float
    harmonic_decay: float  # in (0, 1): near 1 many strong harmonics (tense, bright), lower is softer
    tremor_st: float  # depth of a 6-9 Hz pitch tremor, semitones
    breathiness: float  # aspiration noise relative to the voiced source
    attack: float  # exponent of a syllable's rise: < 1 abrupt, > 1 gentle
    effort_db: float  # vocal effort: level relative to the scene's loudness (the microphone's gain), dB


# After the acoustic profiles of vocal emotion (Banse & Scherer 1996; Juslin & Laukka 2003). Effort:
# hot anger, elation and surprised exclamation loud; sadness and the breathy, trembling (anxious)
# fear soft, as Banse & Scherer's anxiety; disgust a little below neutral.
PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(1.00, 1.0, -1.0, 4.0, 0.88, 0.0, 0.04, 0.8, 0.0),
    "anger": Prosody(1.15, 3.0, -2.0, 5.5, 0.95, 0.0, 0.01, 0.35, 6.0),
    "disgust": Prosody(0.88, 1.5, -5.0, 2.8, 0.87, 0.0, 0.06, 1.0, -2.0),
    "fear": Prosody(1.40, 2.0, 1.0, 5.0, 0.86, 1.0, 0.12, 0.7, -4.0),
    "happiness": Prosody(1.25, 5.0, 1.0, 5.5, 0.90, 0.0, 0.04, 0.6, 3.0),
    "sadness": Prosody(0.85, 0.5, -1.5, 2.5, 0.78, 0.0, 0.16, 1.6, -5.0),
    "surprise": Prosody(1.20, 2.0, 8.0, 4.0, 0.90, 0.0, 0.05, 0.6, 6.0),
}

# F1-F3 (Hz) of five vowels (Peterson & Barney), one per syllable.
_VOWEL_FORMANTS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410]]  # a i u e o
)
_FORMANT_BANDWIDTHS = np.array([80.0, 100.0, 120.0])


def class_prosody(label: int, *, confusable: bool = False) -> Prosody:
    """Class `label`'s prosody; `confusable`: the average over the classes VOICE_CONFUSIONS groups with it."""
    group = confused_with(label, VOICE_CONFUSIONS) if confusable else (label,)
    fields = [dataclasses.astuple(PROSODY[CLASSES[c]]) for c in group]
    return Prosody(*(float(np.mean(values)) for values in zip(*fields)))


def _jittered(prosody: Prosody, rng: np.random.Generator) -> Prosody:
    """The class's prosody with clip-to-clip variation, so no clip is a template copy."""
    return dataclasses.replace(
        prosody,
        pitch_level=prosody.pitch_level * 2 ** (rng.normal(0, 0.7) / 12),
        accent_st=prosody.accent_st * rng.uniform(0.8, 1.2),
        glide_st=prosody.glide_st + rng.normal(0, 0.7),
        syllables_per_s=prosody.syllables_per_s * rng.uniform(0.85, 1.15),
        harmonic_decay=float(np.clip(prosody.harmonic_decay + rng.normal(0, 0.01), 0.7, 0.95)),
        tremor_st=prosody.tremor_st * rng.uniform(0.8, 1.2),
        breathiness=prosody.breathiness * rng.uniform(0.8, 1.2),
    )


def _syllables(duration_s: float, lead_s: float, rate: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(start, length) of each voiced stretch, in seconds, until the utterance ends."""
    syllables, start = [], lead_s
    while start < duration_s - 0.05:
        period = rng.uniform(0.8, 1.2) / rate
        syllables.append((start, min(period * rng.uniform(0.6, 0.85), duration_s - start)))
        start += period
    return syllables


def _pitch_contour(
    t: np.ndarray, base_hz: float, prosody: Prosody, centres: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """f0 (Hz) at times `t`: glide over the utterance, an accent per syllable (at `centres`), tremor, wander."""
    duration = t[-1] + 1 / SAMPLE_RATE
    accents = rng.uniform(-0.5, 0.5, len(centres)) * prosody.accent_st
    semitones = prosody.glide_st * (t / duration - 0.5) + np.interp(t, centres, accents)
    semitones += prosody.tremor_st * np.sin(2 * np.pi * rng.uniform(6, 9) * t + rng.uniform(0, 2 * np.pi))
    wander = smooth_noise(rng, (int(duration * 100) + 2,), memory=0.8)  # natural pitch wander, 10 ms steps
    semitones += 0.15 * np.interp(t, np.arange(len(wander)) / 100, wander)
    return base_hz * prosody.pitch_level * 2 ** (semitones / 12)


def _glottal_source(f0: np.ndarray, decay: float) -> np.ndarray:
    """Harmonics k with amplitude decay**k, in closed form (a discrete summation formula)."""
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    return decay * np.sin(phase) / (1 - 2 * decay * np.cos(phase) + decay**2)


@functools.cache
def _vowel_response(vowel: int, n_fft: int) -> np.ndarray:
    """Frequency response of the vowel's formants as cascaded two-pole resonators (unit gain at DC), on an rfft grid."""
    formants = _VOWEL_FORMANTS[vowel]
    z = np.exp(-2j * np.pi * np.fft.rfftfreq(n_fft))  # z^-1 on the unit circle, cycles per sample
    response = np.ones_like(z)
    for freq, bandwidth in zip(formants, _FORMANT_BANDWIDTHS):
        r, theta = np.exp(-np.pi * bandwidth / SAMPLE_RATE), 2 * np.pi * freq / SAMPLE_RATE
        a1, a2 = -2 * r * np.cos(theta), r * r
        response *= (1 + a1 + a2) / (1 + a1 * z + a2 * z * z)
    return response


def _syllable_envelope(t: np.ndarray, start: float, length: float, attack: float) -> np.ndarray:
    u = np.clip((t - start) / length, 0, 1)
    shape = u**attack * (1 - u) ** 1.2
    peak = (attack / (attack + 1.2)) ** attack * (1.2 / (attack + 1.2)) ** 1.2
    return shape / peak


def synthesize_voice(
    base_pitch_hz: float, label: int, num_samples: int, *, loudness_rms: float, lead_s: float, rng: np.random.Generator,
    confusable: bool = False,
) -> np.ndarray:
    """(num_samples,) float32 mono "speech" at SAMPLE_RATE with the prosody of class `label`
    (`class_prosody(label, confusable=...)`).

    `loudness_rms` (the scene's level: distance and gain of the microphone) and `lead_s` (silence
    before the first syllable) come from the caller so that they can be drawn independently of the
    class; the voice's level is `loudness_rms` raised by the class's vocal effort (`effort_db`).
    """
    prosody = _jittered(class_prosody(label, confusable=confusable), rng)
    t = np.arange(num_samples) / SAMPLE_RATE
    syllables = _syllables(num_samples / SAMPLE_RATE, lead_s, prosody.syllables_per_s, rng)
    centres = np.array([start + length / 2 for start, length in syllables])
    source = _glottal_source(_pitch_contour(t, base_pitch_hz, prosody, centres, rng), prosody.harmonic_decay)
    source += prosody.breathiness * source.std() * rng.normal(size=num_samples)
    n_fft = 1 << int(np.ceil(np.log2(num_samples + 4096)))  # room for the resonators to ring out unwrapped
    spectrum = np.fft.rfft(source, n_fft)
    vowels = rng.integers(len(_VOWEL_FORMANTS), size=len(syllables))
    voice = np.zeros(num_samples)
    for vowel in np.unique(vowels):
        sound = np.fft.irfft(spectrum * _vowel_response(int(vowel), n_fft), n_fft)[:num_samples]
        for (start, length), v in zip(syllables, vowels):
            if v == vowel:
                span = slice(int(start * SAMPLE_RATE), min(num_samples, int(np.ceil((start + length) * SAMPLE_RATE))))
                envelope = _syllable_envelope(t[span], start, length, prosody.attack)
                voice[span] += sound[span] * envelope * rng.uniform(0.6, 1.0)
    level = loudness_rms * 10 ** (prosody.effort_db / 20)
    voice *= level / max(np.sqrt(np.mean(voice**2)), 1e-12)
    return np.clip(voice, -0.99, 0.99).astype(np.float32)
