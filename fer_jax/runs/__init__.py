"""Trained runs on disk, and what is done with them once training is over.

    saved_run.py  a run folder -> its config, its model, its best (else latest) checkpoint restored
                  without an optimizer, its forward pass, predicting over a split
    evaluate.py   `fer-jax eval`: a saved run scored on a split
    fuse.py       `fer-jax fuse`: late fusion of saved runs

Inference (`fer_jax.infer`) restores its runs through `saved_run` too. The flow is one way:
train writes runs; runs reads them with train's checkpoint layout and eval's scoring.
"""
