"""Runnable experiments, one per question the threads ask."""

__all__: list[str] = []
