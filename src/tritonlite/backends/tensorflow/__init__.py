"""Triton's TensorFlow backend for SavedModels (``platform: "tensorflow_savedmodel"``)."""
