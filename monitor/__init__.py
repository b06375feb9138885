"""finmon: an always-on monitor of financial news sentiment."""

__version__ = "0.1.0"
