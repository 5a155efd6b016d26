"""Both example plugins install with pip into a fresh virtualenv and register their entry points.

The fresh venv (no pip of its own) reuses this environment's dependencies, pip and setuptools
through a .pth file; pip fetches only the build backend (setuptools) for its isolated builds,
and installs minisentry and the plugins with ``pip install --no-deps -e``.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_plugins_install_into_a_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Dependencies come from this environment; minisentry and the plugins are installed fresh.
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(ROOT),
                    "-e", str(ROOT / "plugins/minisentry-deploys"), "-e", str(ROOT / "plugins/minisentry-jsonl-archive")],
                   timeout=300, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    check = ("from importlib import metadata\n"
             "eps = {ep.name: ep.load().__name__ for ep in metadata.entry_points(group='minisentry')}\n"
             "assert eps == {'deploys': 'minisentry_deploys.plugin', "
             "'jsonl_archive': 'minisentry_jsonl_archive.plugin'}, eps\n"
             "print(metadata.version('minisentry-deploys'), metadata.version('minisentry-jsonl-archive'))\n")
    out = subprocess.run([str(python), "-c", check], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0.1.0", "0.1.0"]
    listing = subprocess.run([str(venv / "bin" / "minisentry"), "--config", str(ROOT / "minisentry.toml"), "plugins"],
                             capture_output=True, text=True, timeout=120)
    assert "deploys 0.1.0" in listing.stdout and "jsonl_archive 0.1.0" in listing.stdout, listing.stderr
