"""A tiny TFDS corpus for trainer tests: 8-frame 16x16 clips whose class is a direction of motion.

It has the same record layout as the real builders (uint8 frames, landmarks, label, subject), so
the trainer reads it exactly as it reads a built corpus, but it builds in about a second.
"""

import numpy as np
import tensorflow_datasets as tfds

NUM_CLASSES = 3
FRAMES, SIZE = 8, 16


def make_clip(label: int, rng: np.random.Generator) -> np.ndarray:
    """A bright square moving right (0), down (1) or staying (2) over noise."""
    clip = rng.integers(0, 60, size=(FRAMES, SIZE, SIZE, 1), dtype=np.uint8)
    y, x = rng.integers(2, 8, size=2)
    for t in range(FRAMES):
        dy, dx = {0: (0, t), 1: (t, 0), 2: (0, 0)}[label]
        clip[t, y + dy : y + dy + 4, x + dx : x + dx + 4] = 220
    return clip


class TinyClips(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "frames": tfds.features.Tensor(shape=(FRAMES, SIZE, SIZE, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=["right", "down", "still"]),
                    "subject": tfds.features.Text(),
                }
            )
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(96, 0), "validation": self._generate_examples(30, 1)}

    def _generate_examples(self, count, seed):
        rng = np.random.default_rng(seed)
        for i in range(count):
            label = i % NUM_CLASSES
            yield f"{seed}_{i}", {"frames": make_clip(label, rng), "label": label, "subject": f"s{i % 7}"}


def build(data_dir) -> str:
    TinyClips(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    return "tiny_clips"
