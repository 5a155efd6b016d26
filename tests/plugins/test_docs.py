"""docs/plugins.md documents every hook in hookspecs.py."""

from __future__ import annotations

import inspect
from pathlib import Path

from minisentry import hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if name.startswith("minisentry_") and fn.__module__ == hookspecs.__name__]


def test_every_hookspec_is_in_the_reference():
    reference = DOC.read_text().split("## Reference", 1)[1]
    missing = [name for name in hook_names() if f"`{name}(" not in reference]
    assert not missing, f"docs/plugins.md does not document: {missing}"


def test_there_are_hooks_to_check():
    assert "minisentry_register_item_types" in hook_names() and len(hook_names()) >= 11
