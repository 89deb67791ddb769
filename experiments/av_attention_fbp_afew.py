"""Audio-video attention fusion with factorized bilinear pooling on AFEW, train / validation (Zhou et
al., "Exploring Emotion Features and Fusion Strategies for Audio-Video Emotion Recognition", EmotiW 2019).

Published: 65.5% accuracy on AFEW validation. Frame features of a ResNet-18 weighed into one
clip vector by relation attention, an audio CNN on the log-mel spectrogram with its deltas, fused by
factorized bilinear pooling (`fusion="fbp"`; any fer_jax/models/fusion.py layer is one line away).
Records: `fer-jax build afew/rgb224_t16_av`. Adam 1e-4, 80 epochs, best validation epoch. The
width knobs (`width`, `audio_blocks`, `fusion_kwargs`) only shrink the model for tests.
"""

from _common import RGB224_T16, experiment

# ResNet-18 frames, as in the frame attention network the aggregation follows (Meng et al. 2019).
MODEL = {"in_channels": 3, "aggregation": "relation", "frame_backbone": "resnet18", "frame_backbone_kwargs": {"width": 1.0},
         "audio_blocks": ((32, 32), (64, 64), (128, 128), (256, 256)), "dropout": 0.5,
         "fusion": "fbp", "fusion_kwargs": {"factor": 5, "out_dim": 1000}}  # MFB's factor and width


def get_config():
    return experiment("av_attention_fbp_afew", "afew/rgb224_t16_av", "av_attention_fbp", shape=RGB224_T16,
                      num_classes=7, model_kwargs=MODEL)
