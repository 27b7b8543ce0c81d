"""nac: a RADIUS network admission controller that decides by device manufacturer."""

__version__ = "0.1.0"
