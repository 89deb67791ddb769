"""What every part of the demo corpus agrees on: the classes, frame and tile sizes, rates, clip lengths,
and which classes the confusable variant makes look or sound alike."""

CLASSES = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise")
FPS = 25
FRAME_SIZE = 160  # square frames; faces of ~95-125 px, which dlib's HOG detector finds at upsample=1
TILE_SIZE = 112  # side of an identity's face image
TILE_PAD = 24  # room around the tile for the jaw to drop and the brows to rise into
SAMPLE_RATE = 48_000
MIN_FRAMES, MAX_FRAMES = 12, 24
MANIFEST = "manifest.json"

# The "confusable" corpus variant (`demo_av/confusable_*`, what `fer-jax zoo` trains the audio-visual
# methods on): each modality alone leaves the confusions real corpora show. Within a group, every
# class shows the group's average apex motion (faces) or speaks with its average prosody (voices),
# so one modality cannot tell the group's classes apart, while face and voice together separate all
# seven: no face group and voice group share two classes.
FACE_CONFUSIONS = (("fear", "surprise"), ("anger", "disgust"))
VOICE_CONFUSIONS = (("anger", "happiness"), ("sadness", "neutral"))


def confused_with(label: int, groups: tuple[tuple[str, ...], ...]) -> tuple[int, ...]:
    """The class indices that look (or sound) like class `label` in the confusable variant: its group, or itself."""
    name = CLASSES[label]
    group = next((g for g in groups if name in g), (name,))
    return tuple(CLASSES.index(n) for n in group)
