"""A synthetic audio-visual emotion corpus made from real face photographs.

No emotion corpus can be downloaded here, so the demo makes one: every real face that ships with
scikit-image (the astronaut and the LFW subset) is animated from neutral to the apex of each of seven
expressions (onset -> apex, as CK+ sequences run), placed on a random background with head jitter, and
given a synthetic voice whose prosody depends on the class.

Only the facial motion and the prosody carry the label. A clip's rng is split into three streams; the
scene stream (length, timing, placement, jitter, background, brightness, recording level) never sees the
label, so a model cannot learn the class from anything but the face and the voice, and two clips drawn
with the same seed differ only in expression and prosody.

The package, one concern a module:

    settings     the classes, frame and tile sizes, sample rate, clip lengths
    faces        identities: scikit-image's real faces, their landmarks, a voice pitch each
    expressions  each class's landmark displacements at the apex (FACS prototypes)
    scene        what must not depend on the label: length, timing, placement, jitter, background
    render       warp, animate and place the face; a clip with its voice; the MP4 writer
    voice        the synthetic voice, its prosody by class
    corpus       the whole corpus, written by Beam workers (as the builders preprocess), and its manifest
"""

from data_builders.demo_av.synth.corpus import clip_rng, split_subjects, write_demo_corpus
from data_builders.demo_av.synth.expressions import apex_displacements, face_axes
from data_builders.demo_av.synth.faces import Identity, load_identities
from data_builders.demo_av.synth.render import Clip, render_clip, write_clip_mp4
from data_builders.demo_av.synth.settings import CLASSES, FPS, FRAME_SIZE, MANIFEST, MAX_FRAMES, SAMPLE_RATE
from data_builders.demo_av.synth.voice import Prosody, synthesize_voice

__all__ = [
    "CLASSES", "FPS", "FRAME_SIZE", "MANIFEST", "MAX_FRAMES", "SAMPLE_RATE", "Clip", "Identity", "Prosody", "apex_displacements",
    "clip_rng", "face_axes", "load_identities", "render_clip", "split_subjects", "synthesize_voice",
    "write_clip_mp4", "write_demo_corpus",
]
