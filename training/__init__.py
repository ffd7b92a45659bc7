"""Spark training pipeline: load → features → train/CV → evaluate → ONNX export → registry."""
