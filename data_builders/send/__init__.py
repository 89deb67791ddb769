"""SEND (Stanford Emotional Narratives Dataset) builder: valence sequences at 2 Hz."""
