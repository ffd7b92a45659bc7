"""Load tests and benchmarks of the serving side: Locust users, response checks, ``make bench``.

Imports only ``lifeboat.passenger`` (pydantic) from the project, so the Locust image needs no
more than pydantic on top of Locust; the bench alone uses BentoML, MLflow and Spark.
"""
