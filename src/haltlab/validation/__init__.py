"""Model against lab: calibration from measurements, then validation on other cases.

This layer sits on top of both: it imports the lab and the model, which import
nothing of each other.
"""

__all__: list[str] = []
