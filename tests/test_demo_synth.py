"""The synthetic demo corpus: readable MP4s, real facial motion, no label shortcuts, disjoint splits, determinism."""

import itertools
import json

import av
import numpy as np
import pytest
import scipy.stats

from data_builders.demo_av import synth
from data_builders.demo_av.synth import CLASSES, expressions, voice
from fer_jax.errors import ConfigError
from fer_jax.preprocess.face import detect_faces

LABEL = {name: i for i, name in enumerate(CLASSES)}


@pytest.fixture(scope="module")
def identities():
    found, dropped = synth.load_identities()
    # scikit-image ships 100 LFW faces and the astronaut; dlib finds ~92 of the small LFW faces.
    assert len(found) + dropped == 101 and dropped <= 12
    return found


def _decode(path):
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return frames, audio, rate


def test_written_mp4_decodes_to_the_clip(identities, tmp_path):
    clip = synth.render_clip(identities[1], LABEL["happiness"], np.random.default_rng(0))
    path = tmp_path / "clip.mp4"
    synth.write_clip_mp4(path, clip)
    frames, audio, rate = _decode(path)
    assert frames.shape == clip.frames.shape and frames.shape[1:] == (synth.FRAME_SIZE, synth.FRAME_SIZE, 3)
    # H.264 at crf 18 after 4:2:0 subsampling: a few grey levels off on average, not a different picture.
    assert np.abs(frames.astype(float) - clip.frames).mean() < 4.0
    assert rate == clip.sample_rate
    # AAC pads to whole 1024-sample frames; the track lasts as long as the video.
    assert abs(len(audio) - len(clip.audio)) <= 1024
    assert len(clip.audio) == round(len(clip.frames) / clip.fps * clip.sample_rate)
    loud = np.sqrt(np.mean(clip.audio**2))
    assert abs(np.sqrt(np.mean(audio**2)) - loud) < 0.2 * loud


def test_every_frame_shows_a_face_dlib_finds(identities):
    clip = synth.render_clip(identities[0], LABEL["surprise"], np.random.default_rng(1))
    for frame in clip.frames[[0, len(clip.frames) // 2, -1]]:
        (box, *_) = detect_faces(frame, upsample=1)
        assert 60 <= box.right - box.left <= 140


def test_expression_starts_neutral_and_peaks_with_visible_motion(identities):
    """Same rng: same scene for every class, so any difference between classes is the expression."""
    for identity in identities[:3]:
        clips = [synth.render_clip(identity, label, np.random.default_rng(7)) for label in range(len(CLASSES))]
        box = detect_faces(clips[0].frames[0])[0]
        face = np.s_[int(box.top) : int(box.bottom), int(box.left) : int(box.right)]
        neutral = clips[LABEL["neutral"]].frames.astype(np.float32)
        for label, clip in enumerate(clips):
            np.testing.assert_array_equal(clip.frames[0], clips[0].frames[0])  # onset: neutral in every class
            if label == LABEL["neutral"]:
                continue
            # At the apex the face box differs from the neutral clip's (identical but for the expression)
            # by grey levels averaged over the whole box, most of which does not move: several pixels
            # of motion where the features are. (Measured 2.5-10 over 15 identities.)
            apex_change = np.abs(clip.frames[-1][face] - neutral[-1][face]).mean()
            assert apex_change > 2.0, (identity.subject, CLASSES[label], apex_change)
        # First to last frame, head jitter and sensor grain included (the same in every class), the face
        # changes clearly more in surprise and happiness than in neutral.
        change = {
            name: np.abs(clips[LABEL[name]].frames[-1][face].astype(np.float32) - clips[0].frames[0][face]).mean()
            for name in ("neutral", "happiness", "surprise")
        }
        assert change["surprise"] > 1.3 * change["neutral"] and change["happiness"] > 1.1 * change["neutral"], change


@pytest.mark.parametrize(
    ("name", "points", "out", "up"),
    [
        ("happiness", [48, 54], +1, +1),  # mouth corners up and out
        ("sadness", [48, 54], 0, -1),  # mouth corners down
        ("anger", [21, 22], -1, -1),  # inner brows down and together
        ("fear", [21, 22], -1, +1),  # inner brows up and together
        ("surprise", [19, 24], 0, +1),  # brows up
        ("surprise", [8], 0, -1),  # jaw dropped
        ("disgust", [50, 52], 0, +1),  # upper lip raised
    ],
)
def test_landmark_motion_points_the_way_the_expression_does(identities, name, points, out, up):
    landmarks = identities[0].landmarks
    iod, across, down = synth.face_axes(landmarks)
    moved = synth.apex_displacements(landmarks, LABEL[name])[points]
    side = np.sign((landmarks[points] - landmarks[27:31].mean(0)) @ across)
    if up:
        assert np.all(-(moved @ down) * up > 0.05 * iod)
    if out:
        assert np.all(side * (moved @ across) * out > 0.02 * iod)
    assert not synth.apex_displacements(landmarks, LABEL["neutral"]).any()


def test_label_is_not_recoverable_from_length_brightness_or_recording_level(identities):
    """Over corpus-style draws, per-class means of the nuisances are not separated (one-way ANOVA).
    The recording level is the voice's level less its class's vocal effort (PROSODY), which the
    label may set.

    This catches only a gross leak with 63 clips (the scenes' own spread hides a few grey levels);
    the exact guarantees are the next tests' (same rng: same scene, and the same pixels but for the
    expression's geometry, whatever the class).
    """
    per_class = 9
    features = {"frames": [], "brightness": [], "recording_db": []}
    labels = []
    for label in range(len(CLASSES)):
        for k in range(per_class):
            identity = identities[k % 3]
            clip = synth.render_clip(identity, label, synth.clip_rng(0, identity.subject, label, k))
            features["frames"].append(len(clip.frames))
            features["brightness"].append(clip.frames.mean())
            level_db = 20 * np.log10(np.sqrt(np.mean(clip.audio**2)))
            features["recording_db"].append(level_db - voice.PROSODY[CLASSES[label]].effort_db)
            labels.append(label)
    labels = np.asarray(labels)
    for name, values in features.items():
        values = np.asarray(values)
        p = scipy.stats.f_oneway(*(values[labels == c] for c in range(len(CLASSES)))).pvalue
        assert p > 0.001, (name, p)


def test_same_scene_for_every_class_given_the_same_rng(identities):
    """Same length and background whatever the class; the voice's level differs by exactly the
    classes' vocal efforts (PROSODY.effort_db), so the recording level under it is the same."""
    clips = [synth.render_clip(identities[2], label, np.random.default_rng(3)) for label in range(len(CLASSES))]
    assert len({len(c.frames) for c in clips}) == 1
    level_db = np.array([20 * np.log10(np.sqrt(np.mean(c.audio**2))) for c in clips])
    effort_db = np.array([voice.PROSODY[name].effort_db for name in CLASSES])
    # float32 audio: its rms is exact to ~1e-6 relative, 1e-5 dB; 0.01 dB still catches any other gain.
    np.testing.assert_allclose(level_db - effort_db, level_db[0] - effort_db[0], atol=0.01)
    corner = np.s_[:, :6, :6]  # background, never covered by the face tile
    for clip in clips:
        np.testing.assert_array_equal(clip.frames[corner], clips[0].frames[corner])


@pytest.mark.parametrize("confusable", [False, True], ids=["main", "confusable"])
def test_label_changes_only_the_expression_geometry_and_the_prosody(identities, monkeypatch, confusable):
    """What the label may change: the landmarks' motion (EXPRESSION_MOVES) and the voice's prosody
    (PROSODY). What it may not: everything else (face and scene brightness, contrast, colour,
    grain, placement, jitter, timing, loudness), at onset, during the rise and at the apex alike.
    With every class given one class's motion and prosody, a clip must come out bit for bit the same
    whatever its label: any other path from the label into the pixels or the sound fails here, even
    a shift of a grey level in one frame. Happiness's motion opens the mouth, so the mouth painter
    is covered too. The confusable variant (fer-jax zoo's corpus) is held to the same rule."""
    for name in CLASSES:
        monkeypatch.setitem(expressions.EXPRESSION_MOVES, name, expressions.EXPRESSION_MOVES["happiness"])
        monkeypatch.setitem(voice.PROSODY, name, voice.PROSODY["happiness"])
    for identity, seed in ((identities[0], 11), (identities[5], 12)):
        clips = [synth.render_clip(identity, label, np.random.default_rng(seed), confusable=confusable)
                 for label in range(len(CLASSES))]
        for label, clip in enumerate(clips[1:], start=1):
            for t, (frame, reference) in enumerate(zip(clip.frames, clips[0].frames, strict=True)):
                changed = np.abs(frame.astype(int) - reference).max()
                assert changed == 0, (f"{identity.subject}, {CLASSES[label]}: frame {t} of {len(clip.frames)} "
                                      f"differs by {changed} grey levels")
            np.testing.assert_array_equal(clip.audio, clips[0].audio, err_msg=f"{identity.subject}, {CLASSES[label]}")
    # The same clips with the real tables: the label does move the face at the apex.
    monkeypatch.undo()
    happy, sad = (synth.render_clip(identities[0], LABEL[name], np.random.default_rng(11))
                  for name in ("happiness", "sadness"))
    assert np.array_equal(happy.frames[0], sad.frames[0]) and not np.array_equal(happy.frames[-1], sad.frames[-1])


def test_confusable_variant_makes_exactly_its_pairs_alike_in_one_modality(identities):
    """Faces: fear = surprise and anger = disgust, bit for bit; voices: anger = happiness and sadness
    = neutral. Every other pair differs in the face or in the voice, so the two together tell all
    seven apart, and the main corpus keeps every class distinct in both."""
    identity, seed = identities[3], 21

    def render(name, confusable=True):
        return synth.render_clip(identity, LABEL[name], np.random.default_rng(seed), confusable=confusable)

    clips = {name: render(name) for name in CLASSES}
    face_alike = {frozenset(p) for p in synth.settings.FACE_CONFUSIONS}
    voice_alike = {frozenset(p) for p in synth.settings.VOICE_CONFUSIONS}
    for a, b in itertools.combinations(CLASSES, 2):
        same_face = np.array_equal(clips[a].frames, clips[b].frames)
        same_voice = np.array_equal(clips[a].audio, clips[b].audio)
        assert same_face == (frozenset((a, b)) in face_alike), (a, b, "face")
        assert same_voice == (frozenset((a, b)) in voice_alike), (a, b, "voice")
        assert not (same_face and same_voice), (a, b)
    for a, b in (("fear", "surprise"), ("anger", "happiness")):
        main_a, main_b = render(a, confusable=False), render(b, confusable=False)
        assert not np.array_equal(main_a.frames, main_b.frames) and not np.array_equal(main_a.audio, main_b.audio)


def test_render_is_deterministic(identities):
    a = synth.render_clip(identities[4], LABEL["fear"], synth.clip_rng(5, identities[4].subject, LABEL["fear"], 0))
    b = synth.render_clip(identities[4], LABEL["fear"], synth.clip_rng(5, identities[4].subject, LABEL["fear"], 0))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.audio, b.audio)
    c = synth.render_clip(identities[4], LABEL["fear"], synth.clip_rng(5, identities[4].subject, LABEL["fear"], 1))
    assert a.frames.shape != c.frames.shape or not np.array_equal(a.frames, c.frames)


def test_split_is_subject_disjoint_and_seeded():
    subjects = [f"s{i:03d}" for i in range(100)]
    split = synth.split_subjects(subjects, 0.2, seed=0)
    assert set(split) == set(subjects)
    assert sum(v == "validation" for v in split.values()) == 20
    assert synth.split_subjects(list(reversed(subjects)), 0.2, seed=0) == split
    assert synth.split_subjects(subjects, 0.2, seed=1) != split


def test_corpus_layout_manifest_and_reuse(identities, tmp_path):
    few = identities[:4]
    clips = synth.write_demo_corpus(tmp_path, val_fraction=0.25, seed=3, num_workers=2, identities=few)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["clips"] == clips and manifest["seed"] == 3 and "dropped_identities" in manifest
    assert len(clips) == len(few) * len(CLASSES)
    splits_of = {}
    for clip in clips:
        splits_of.setdefault(clip["subject"], set()).add(clip["split"])
        assert clip["path"] == f"{clip['split']}/{clip['subject']}/{clip['label_name']}_0.mp4"
        assert CLASSES[clip["label"]] == clip["label_name"]
        assert (tmp_path / clip["path"]).is_file()
    assert all(len(s) == 1 for s in splits_of.values())  # subject-disjoint
    assert sorted(next(iter(s)) for s in splits_of.values()) == ["train"] * 3 + ["validation"]
    for subject in splits_of:
        assert sorted(c["label"] for c in clips if c["subject"] == subject) == list(range(len(CLASSES)))

    # A worker's file is byte-identical to rendering the same clip here: the clip's rng depends only on its name.
    one = clips[5]
    identity = next(i for i in few if i.subject == one["subject"])
    here = tmp_path / "here.mp4"
    rng = synth.clip_rng(3, identity.subject, one["label"], 0)
    synth.write_clip_mp4(here, synth.render_clip(identity, one["label"], rng))
    assert here.read_bytes() == (tmp_path / one["path"]).read_bytes()

    # A complete corpus is reused as it is; one made with other settings is not overwritten.
    stamp = (tmp_path / one["path"]).stat().st_mtime_ns
    assert synth.write_demo_corpus(tmp_path, val_fraction=0.25, seed=3, num_workers=2, identities=few) == clips
    assert (tmp_path / one["path"]).stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="seed"):
        synth.write_demo_corpus(tmp_path, val_fraction=0.25, seed=4, num_workers=2, identities=few)
