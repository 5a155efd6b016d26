"""``python -m minisentry``: the same as the ``minisentry`` command."""

from .cli import main

main()
