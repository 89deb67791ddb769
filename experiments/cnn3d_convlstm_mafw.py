"""3D-CNN + ConvLSTM (Saurav et al. 2020) on MAFW's 11 single-label classes, the owners' 5 folds
(`fer-jax cv`).

Published: none for this model on MAFW; compare with the leading systems' WAR/UAR on MAFW's 5 folds
in docs/corpora/mafw.md. The paper's recipe unchanged (experiments/cnn3d_convlstm_ck_plus.py): 8
frames of 64x64 gray faces (`fer-jax build mafw/gray64_t8`, video only), x14 augmentation, Adam
1e-4, 80 epochs, best test-fold epoch.
"""

from _common import GRAY64_T8, X14, X14_COPIES, experiment, folds


def get_config():
    return experiment(
        "cnn3d_convlstm_mafw", "mafw/gray64_t8", "cnn3d_convlstm", shape=GRAY64_T8, num_classes=11,
        folds=folds(5), augment=X14, learning_rate=1e-4, num_epochs=80 * X14_COPIES, eval_every_epochs=X14_COPIES,
    )
