"""Write `dummy_data/fer2013.csv`: a small fer2013.csv of real faces, in Kaggle's exact format.

Rows: 38 faces of scikit-image's LFW subset (25x25, resized to 48x48 as FER2013's tight crops),
the astronaut's face cropped the same way, 2 of the subset's non-face patches (the aligned config
must skip them as "no_face"), then one malformed row for each reason the parser knows. Labels
cycle through the 7 classes; Usage puts ~60% in Training and ~20% each in PublicTest and PrivateTest.

    python -m data_builders.fer2013.make_dummy_data [OUT_CSV]
"""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from data_builders.fer2013.parse import CLASSES, SIDE

OUT = os.path.join(os.path.dirname(__file__), "dummy_data", "fer2013.csv")
NUM_LFW_FACES = 38
NUM_NON_FACES = 2
USAGES = ("Training", "Training", "Training", "PublicTest", "PrivateTest")


def _resize(image: np.ndarray) -> np.ndarray:
    """float [0, 1] or uint8 gray -> (48, 48) uint8, bicubic."""
    image = np.asarray(image, np.float32)
    if image.max() > 1.0:
        image = image / 255.0
    big = cv2.resize(image, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.rint(big * 255), 0, 255).astype(np.uint8)


def lfw_subset() -> np.ndarray:
    import skimage.data

    return np.load(os.path.join(os.path.dirname(skimage.data.__file__), "lfw_subset.npy"))


def astronaut_face() -> np.ndarray:
    """The astronaut's face as a tight square crop around its landmarks, like FER2013's crops."""
    import skimage.data

    from fer_jax.preprocess.face import largest_face_landmarks

    photo = skimage.data.astronaut()
    points = largest_face_landmarks(photo)
    (left, top), (right, bottom) = points.min(0), points.max(0)
    cx, cy, half = (left + right) / 2, (top + bottom) / 2, 0.6 * max(right - left, bottom - top)
    crop = photo[int(cy - half) : int(cy + half), int(cx - half) : int(cx + half)]
    return _resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))


def _pixels(image: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in image.reshape(-1))


def rows() -> list[str]:
    """The csv's lines, header first."""
    subset = lfw_subset()
    images = [_resize(face) for face in subset[:NUM_LFW_FACES]] + [astronaut_face()]
    images += [_resize(patch) for patch in subset[100 : 100 + NUM_NON_FACES]]  # rows 100-199 are not faces
    lines = ["emotion,pixels,Usage"]
    for i, image in enumerate(images):
        lines.append(f"{i % len(CLASSES)},{_pixels(image)},{USAGES[i % len(USAGES)]}")
    good = _pixels(images[0]).split()
    lines += [
        f"3,{' '.join(good[:-1])},Training",  # wrong_pixel_count: 2303 values
        f"7,{' '.join(good)},Training",  # bad_label: no class 7
        f"happy,{' '.join(good)},PublicTest",  # bad_label: a name, not an index
        f"2,{' '.join(good)},Validation",  # unknown_usage
        f"4,{' '.join(['256'] + good[1:])},PrivateTest",  # bad_pixels: above 255
        f"5,{' '.join(good[:10] + ['x'] + good[11:])},Training",  # bad_pixels: not a number
        f"6,{' '.join(good)}",  # wrong_column_count
    ]
    return lines


def main(out: str = OUT) -> None:
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", newline="") as f:
        f.write("\n".join(rows()) + "\n")
    print(f"wrote {out} ({os.path.getsize(out) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
