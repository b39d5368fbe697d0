"""WeightLab's version, in a module that imports nothing (the window reads it without the API)."""

__version__ = "0.1.0"
