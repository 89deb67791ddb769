"""FER2013 builder: 48x48 gray faces in 7 classes, raw or re-aligned."""
