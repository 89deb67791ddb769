"""3D-CNN + ConvLSTM on CK+, 10-fold subject-independent (Saurav et al. 2020).

Published: 95.10% accuracy (mean over the 10 folds). Protocol: 8 frames of 64x64 gray faces
(`fer-jax build ck_plus/gray64_t8`), the paper's x14 rotation-and-flip augmentation, Adam 1e-4,
80 epochs, the best validation epoch reported (the `best_val_accuracy` column of `fer-jax cv`).

The paper trains 80 epochs over the 14 augmented copies of each clip; here the copies are drawn
online (experiments/_common.X14), so 80 x 14 passes over the clips are the same number of steps,
and evaluating every 14 passes is evaluating once per paper epoch.
"""

from _common import GRAY64_T8, X14, X14_COPIES, experiment, folds


def get_config():
    return experiment(
        "cnn3d_convlstm_ck_plus", "ck_plus/gray64_t8", "cnn3d_convlstm", shape=GRAY64_T8, num_classes=7,
        folds=folds(10), augment=X14, learning_rate=1e-4, num_epochs=80 * X14_COPIES, eval_every_epochs=X14_COPIES,
    )
