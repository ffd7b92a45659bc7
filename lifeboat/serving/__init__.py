"""What ``service.py`` wires together: HTTP bodies and guards over the prediction path, the model
holder and its reloads, worker lifecycle, monitoring records, and the BentoML model store.

Stands on the core (``lifeboat/*.py``), which never imports it.
"""
