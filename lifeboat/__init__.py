"""Lifeboat's shared core: passenger schema, derived features, settings and the ONNX scorer.

Imports neither pyspark nor mlflow nor evidently: the Bento ships this package and nothing
heavier.
"""
