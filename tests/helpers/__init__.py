"""What several test modules share, so test modules never import one another (importable as
`helpers`: pytest puts tests/ on sys.path through tests/conftest.py, in every xdist worker and under
`python -m pytest` alike).

    training.py   the tiny training run's config, and comparing model + optimizer states
    fitting.py    "a few Adam steps fit a fixed batch", the check every model test makes
    media.py      small video files written with PyAV: the astronaut's face moving, with sound
    tolerance.py  float tolerances derived from the arithmetic, and checks that a wrong layout misses them
"""
