"""3D-CNN + ConvLSTM (Saurav et al. 2020) on DFEW, the owners' 5 folds (`fer-jax cv`).

Published: none for this model on DFEW; compare with the leading systems' WAR/UAR on DFEW's 5
folds in docs/corpora/dfew.md (e.g. MAE-DFER 74.43% WAR, 63.41% UAR). The paper's recipe
unchanged (experiments/cnn3d_convlstm_ck_plus.py): 8 frames of 64x64 gray faces (`fer-jax build
dfew/gray64_t8`), x14 augmentation, Adam 1e-4, 80 epochs, best test-fold epoch. `fer-jax cv` trains
on four folds and tests on the fifth, five times; its table gives accuracy (WAR) and UAR per fold.
"""

from _common import GRAY64_T8, X14, X14_COPIES, experiment, folds


def get_config():
    return experiment(
        "cnn3d_convlstm_dfew", "dfew/gray64_t8", "cnn3d_convlstm", shape=GRAY64_T8, num_classes=7,
        folds=folds(5), augment=X14, learning_rate=1e-4, num_epochs=80 * X14_COPIES, eval_every_epochs=X14_COPIES,
    )
