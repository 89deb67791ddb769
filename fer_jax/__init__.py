"""fer-jax: video-based and audio-visual emotion recognition in JAX/Flax."""
__version__ = "0.1.0"
