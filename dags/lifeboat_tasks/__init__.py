"""What the Lifeboat DAGs share: running the project's CLI, and the approval gate."""
