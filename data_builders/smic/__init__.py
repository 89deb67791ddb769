"""SMIC (Spontaneous Micro-expression Corpus) builder: HS, VIS and NIR cameras, 3 classes, one split per subject."""
