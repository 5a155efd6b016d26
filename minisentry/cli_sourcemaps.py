"""``minisentry sourcemaps upload DIR``: store a folder's minified files and maps locally, without HTTP.

The same bundle sentry-cli builds, made here: each ``.js``/``.mjs``/``.cjs`` file is a
``minified_source`` with its ``//# debugId=`` and ``sourceMappingURL``, each ``.map`` a
``source_map`` with its ``debug_id``; URLs are ``--url-prefix`` (``~/``) plus the path in DIR.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import orjson

from .bundle_format import build_bundle, normalize_debug_id
from .errors import MinisentryError
from .jsframes import sourcemap_reference

__all__ = ["sourcemaps"]

_DEBUG_ID_RE = re.compile(rb"//# debugId=([0-9a-fA-F-]{32,36})\s*$", re.MULTILINE)
_SCRIPTS = (".js", ".mjs", ".cjs")


def _files(directory: Path, prefix: str, limit: int) -> list[tuple[str, str, dict[str, str], bytes]]:
    """Read the folder into ``(url, type, headers, bytes)``. Raises ClickException for a file over ``limit``."""
    found = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or not path.name.endswith((*_SCRIPTS, ".map")):
            continue
        if path.stat().st_size > limit:
            raise click.ClickException(f"{path} is larger than sourcemaps.max_file_bytes ({limit})")
        data = path.read_bytes()
        url = prefix.rstrip("/") + "/" + path.relative_to(directory).as_posix()
        headers: dict[str, str] = {}
        if path.name.endswith(".map"):
            try:
                document = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise click.ClickException(f"{path} is not a JSON source map: {exc}") from exc
            debug_id = normalize_debug_id(document.get("debug_id") or document.get("debugId")) \
                if isinstance(document, dict) else None
            kind = "source_map"
        else:
            match = _DEBUG_ID_RE.search(data[-4096:])
            debug_id = normalize_debug_id(match.group(1).decode()) if match else None
            reference = sourcemap_reference(data)
            if reference and not reference.startswith("data:"):
                headers["sourcemap"] = reference
            kind = "minified_source"
        if debug_id:
            headers["debug-id"] = debug_id
        found.append((url, kind, headers, data))
    return found


@click.group()
def sourcemaps() -> None:
    """Source maps for JavaScript symbolication."""


@sourcemaps.command("upload")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--project", required=True, help="Project slug the files belong to.")
@click.option("--release", default=None, help="Release the files belong to (for lookups by URL).")
@click.option("--dist", default=None, help="Distribution within the release.")
@click.option("--url-prefix", default="~/", show_default=True, help="URL prefix of the files.")
@click.pass_context
def sourcemaps_upload(ctx: click.Context, directory: Path, project: str, release: str | None, dist: str | None,
                      url_prefix: str) -> None:
    """Store DIR's minified files and source maps as one artifact bundle (local, no HTTP)."""
    from .artifacts import ArtifactStore
    from .cli import _store_call, _load

    config = _load(ctx.obj["config_path"])
    project_id = _store_call(ctx, lambda store: store.project_by_slug(project))["id"]
    files = _files(directory, url_prefix, config.sourcemaps.max_file_bytes)
    if not files:
        raise click.ClickException(f"no .js or .map files in {directory}")
    data = build_bundle(files, release=release, dist=dist, project=project)
    store = ArtifactStore(config.sourcemaps)
    try:
        store.open()
        store.add_bundle(data, [project_id], release, dist)
    except MinisentryError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    with_ids = sum(1 for _, _, headers, _ in files if "debug-id" in headers)
    click.echo(f"stored {len(files)} file(s) ({with_ids} with debug ids) for project {project}"
               + (f", release {release}" if release else ""))
