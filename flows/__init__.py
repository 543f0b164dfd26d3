"""Prefect flows: the orchestration layer. They only compose the engine in ``partage``."""
