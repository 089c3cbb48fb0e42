"""The version of bridge (and of its JS client, kept the same)."""

__version__ = "0.1.0"
