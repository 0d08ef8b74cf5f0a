"""Runnable experiments, one per question the threads ask."""
