"""Drift monitoring: compare the service's prediction logs with the serving model's reference.

``python -m drift report`` writes the comparison; ``python -m drift shadow`` compares Production
with the shadow it served beside; ``python -m drift retrain`` closes the loop.
Importing the package costs nothing: ``drift.traffic`` is stdlib-only so the load test can use it.
"""
