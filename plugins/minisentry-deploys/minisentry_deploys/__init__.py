"""minisentry-deploys: deploy markers stored next to minisentry's issues (see plugin.py)."""

__version__ = "0.1.0"
