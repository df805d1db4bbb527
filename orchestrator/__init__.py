"""Measure how a distributed training job scales, in PyTorch and TensorFlow, on Ray."""

__version__ = "0.2.0"
