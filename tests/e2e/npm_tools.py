"""The npm tools the JavaScript e2e tests run (helper module, not a test file): esbuild and @sentry/node.

They are installed once into ``$MINISENTRY_NPM_CACHE`` (default ``~/.cache/minisentry/npm``) at the
pinned versions below, by ``npm install`` (``scripts/npm_tools.sh`` does the same ahead of time).
When npm or the registry is unavailable the calling test is skipped locally and fails under
``CI=true``, like the Redis/Kafka tests (tests/services.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ..services import unavailable

__all__ = ["PACKAGES", "npm_root"]

PACKAGES = {"esbuild": "0.28.2", "@sentry/node": "11.12.0"}


def _cache() -> Path:
    return Path(os.environ.get("MINISENTRY_NPM_CACHE", Path.home() / ".cache" / "minisentry" / "npm"))


def _installed(root: Path) -> bool:
    for name, version in PACKAGES.items():
        manifest = root / "node_modules" / name / "package.json"
        try:
            if json.loads(manifest.read_text())["version"] != version:
                return False
        except (OSError, ValueError, KeyError):
            return False
    return (root / "node_modules" / ".bin" / "esbuild").exists()


def npm_root() -> Path:
    """Return the folder whose ``node_modules`` holds the pinned packages, installing them if needed."""
    root = _cache()
    if _installed(root):
        return root
    if shutil.which("npm") is None or shutil.which("node") is None:
        unavailable("node and npm are needed for the JavaScript e2e tests")
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "package.json").exists():
        (root / "package.json").write_text('{"private": true}\n')
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", *specs], cwd=root,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not _installed(root):
        unavailable(f"npm install {' '.join(specs)} failed: {result.stderr[-500:]}")
    return root
