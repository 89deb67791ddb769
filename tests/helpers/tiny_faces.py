"""A `ClipCorpusBuilder` whose clips a test hands it (`TinyFaces.ITEMS`), for tests of the base.

In a package of its own module: TFDS looks for a builder's metadata (README, citations) in the
package folder of its module, and a test module is not in a package.
"""

import numpy as np
import tensorflow_datasets as tfds

from data_builders import base
from fer_jax.preprocess import clip

CLASSES = ("calm", "surprise")
CONFIG = clip.ClipConfig(
    need_audio=False, size=32, variable_length=True, max_frames=6, store_frame_indices=True, lemhi=True
)
EXTRA = {
    "apex": tfds.features.Scalar(dtype=np.int32),
    "valence": tfds.features.Tensor(shape=(None,), dtype=np.float32),
}


class TinyFaces(base.ClipCorpusBuilder):
    CLASS_NAMES = CLASSES
    EXTRA_FEATURES = EXTRA
    BUILDER_CONFIGS = [base.ClipCorpusConfig(name="tiny", clip=CONFIG)]
    ITEMS: dict = {}  # split -> ClipItems

    def manual_folder(self, dl_manager):
        return None  # the items are made by the test

    def find_clips(self, manual_dir, report):
        return self.ITEMS
