"""3D-CNN + ConvLSTM regressing the BDI-II score on AVEC2013 (depression sub-challenge), train / development.

Published: the challenge's video baseline and the results of its entrants are in Valstar et al.,
AVEC 2013 (MAE and RMSE per recording on the development and test partitions); no figure is
restated here (none was found in the sources this project can search; see docs/corpora/avec2013.md).
Protocol: each recording read as 2 s windows of 8 aligned 64x64 gray faces (`fer-jax build
avec2013/gray64_t8_w2s`); the network of Saurav et al. 2020 with one output predicts the score per
window (squared error); the windows' predictions are averaged per recording and scored by MAE and
RMSE (`fer-jax train` reports val_mae and val_rmse; the best checkpoint has the lowest RMSE).
Adam 1e-4, 20 epochs (a recording yields hundreds of windows, so an epoch is long), no augmentation.
"""

from _common import GRAY64_T8, experiment


def get_config():
    return experiment(
        "cnn3d_convlstm_avec2013", "avec2013/gray64_t8_w2s", "cnn3d_convlstm_score", shape=GRAY64_T8, num_classes=1,
        learning_rate=1e-4, num_epochs=20,
    )
