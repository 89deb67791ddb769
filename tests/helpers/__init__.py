"""What several test modules share, so test modules never import one another.

    training.py  the tiny training run's config, and comparing model + optimizer states
    fitting.py   "a few Adam steps fit a fixed batch", the check every model test makes
    media.py     small video files written with PyAV: the astronaut's face moving, with sound
"""
