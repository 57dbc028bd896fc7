"""Assay: choose and tune an LLM on your own data."""

__version__ = "0.1.0"
