"""3D-CNN + ConvLSTM on SAVEE, random 80:20 split, mean of 5 runs (Saurav et al. 2020).

Published: 98.83% accuracy. Same recipe as on CK+ (experiments/cnn3d_convlstm_ck_plus.py): 8 frames
of 64x64 gray faces (`fer-jax build savee/gray64_t8`), x14 augmentation, Adam 1e-4, 80 epochs, best
validation epoch.

The 5 runs: the builder publishes one seeded, speaker- and emotion-stratified 80:20 split
(`train`/`test`, seed 0; data_builders/savee/README.md). `fer-jax cv` trains on it 5 times, run k
with seed + k (initialisation, data order and augmentation). The paper does not say whether its 5
runs redrew the split; ours average over training randomness, not over splits, so our spread is
the narrower of the two readings.
"""

from _common import GRAY64_T8, X14, X14_COPIES, experiment, repeats


def get_config():
    return experiment(
        "cnn3d_convlstm_savee", "savee/gray64_t8", "cnn3d_convlstm", shape=GRAY64_T8, num_classes=7,
        cv_runs=repeats("train", "test", 5), augment=X14, learning_rate=1e-4, num_epochs=80 * X14_COPIES,
        eval_every_epochs=X14_COPIES,
    )
