"""Lifeboat's shared core, and (in ``lifeboat.serving``) the service's own package.

The core modules (``lifeboat/*.py``): the passenger schema, derived features, the ONNX scorer,
the prediction path, the served-model artifact, settings, stream names and routes. They import
neither BentoML nor pyspark nor MLflow nor Evidently; training, serving, drift and Locust all
stand on them. ``lifeboat.serving`` adds the HTTP bodies, guards, model holder and reloads,
lifecycle and monitoring, and the BentoML model store; it depends on the core, never the
reverse (``tests/unit/test_import_graph.py``).
"""
