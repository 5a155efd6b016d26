"""Real binaries for the native tests, built once per session by the real gcc."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

INLINE_C = """\
#include <stdio.h>
static inline __attribute__((always_inline)) int inner(int a, int b) {
    return a / b;
}
int __attribute__((noinline)) outer(int x) {
    int r = inner(x, x - 3);
    return r + 1;
}
int main(int argc, char **argv) { printf("%d\\n", outer(argc + 2)); return 0; }
"""


def gcc(folder: Path, name: str, source: str, *flags: str) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed for the native tests: apt-get install gcc")
    (folder / f"{name}.c").write_text(source)
    subprocess.run(["gcc", *flags, "-o", name, f"{name}.c"], cwd=folder, check=True, capture_output=True)
    return folder / name


@pytest.fixture(scope="session")
def inline_binary(tmp_path_factory) -> Path:
    """``outer`` with ``inner`` inlined into it (-O1), with DWARF and a build id."""
    return gcc(tmp_path_factory.mktemp("gcc"), "inl", INLINE_C, "-g", "-O1", "-Wl,--build-id")
