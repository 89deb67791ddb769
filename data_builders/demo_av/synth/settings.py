"""What every part of the demo corpus agrees on: the classes, frame and tile sizes, rates, clip lengths."""

CLASSES = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise")
FPS = 25
FRAME_SIZE = 160  # square frames; faces of ~95-125 px, which dlib's HOG detector finds at upsample=1
TILE_SIZE = 112  # side of an identity's face image
TILE_PAD = 24  # room around the tile for the jaw to drop and the brows to rise into
SAMPLE_RATE = 48_000
MIN_FRAMES, MAX_FRAMES = 12, 24
MANIFEST = "manifest.json"
