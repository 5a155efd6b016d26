"""minisentry-jsonl-archive: every processed event as one JSON line in a rotating file (see archive.py)."""

__version__ = "0.1.0"
