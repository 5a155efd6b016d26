"""``minisentry projects settings``: a project's own ``[filters]``, ``[scrubbing]`` and ``[[quotas]]``.

``set PROJECT SECTION FILE`` (``-`` reads stdin) validates the TOML with the config file's own
parsers (see ``project_settings.py``) and stores it; a bad value is refused with the key named and
nothing is written, so running servers keep what they have. ``show PROJECT`` prints what is stored
and the effective settings; ``clear PROJECT SECTION`` goes back to the file's section. After a
write, running servers are woken through the fan-out and apply the change within a second.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from typing import Any

import click
import orjson

from .errors import ConfigError, MinisentryError
from .fanout import TOPIC_PROJECTS
from .project_settings import SECTIONS, ProjectSettings, parse_section

__all__ = ["settings", "read_section"]

#: The largest settings file accepted (a section is a few KB; this only guards against mistakes).
MAX_FILE_BYTES = 1024 * 1024


def _cli_helpers() -> Any:
    # cli.py imports this module at its end to register the group: import it late, not at the top.
    from . import cli

    return cli


def read_section(text: str, section: str, source: str) -> Any:
    """Parse a settings file: the section written as in minisentry.toml (``[filters]``, ``[[quotas]]``).

    For filters and scrubbing the table's keys may also stand alone, without the header. Returns
    the raw value, JSON-compatible. Raises ConfigError for TOML errors, other sections, or values
    JSON cannot hold.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    if section in raw:
        others = sorted(set(raw) - {section})
        if others:
            raise ConfigError(f"{source}: unknown key '{others[0]}' (the file may hold only [{section}])")
        value = raw[section]
    elif section == "quotas":
        raise ConfigError(f"{source}: no [[quotas]] tables (write the quotas as in minisentry.toml)")
    else:
        value = raw
    try:
        # What is stored is JSON; checking the JSON form means the server reads back what was validated.
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _project(store: Any, name: str, config: Any) -> dict[str, Any]:
    """Find a project by slug or id; one of the config file's not stored yet is stored first. Raises ClickException."""
    for project in store.list_projects():
        if project["slug"] == name or str(project["id"]) == name:
            return project
    for project in config.projects:
        if project.slug == name or str(project.id) == name:
            # `serve` seeds the file's projects; doing it here lets one be configured before the first start.
            store.seed_projects([project])
            return {"id": project.id, "slug": project.slug}
    raise click.ClickException(f"no project {name!r} (give its slug or id; see `minisentry projects list`)")


def _settings_store(ctx: click.Context) -> tuple[Any, Any]:
    config, store = _cli_helpers()._open_store(ctx)
    if not hasattr(store, "project_settings"):
        store.close()
        raise click.ClickException(f"the {config.storage.backend!r} store does not keep per-project settings")
    return config, store


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


@click.group("settings")
def settings() -> None:
    """A project's own filters, scrubbing and quotas, over the config file's sections."""


@settings.command("set")
@click.argument("project")
@click.argument("section", type=click.Choice(SECTIONS))
@click.argument("file", type=click.File("rb"))
@click.pass_context
def settings_set(ctx: click.Context, project: str, section: str, file: Any) -> None:
    """Validate FILE (TOML; '-' for stdin) and store it as PROJECT's SECTION.

    filters/scrubbing merge over the config file's section key by key; quotas are added to the
    file's. A file that does not validate is refused and nothing changes.
    """
    data = file.read(MAX_FILE_BYTES + 1)
    name = getattr(file, "name", "<stdin>")
    source = name if isinstance(name, str) and name != "-" else "<stdin>"
    if len(data) > MAX_FILE_BYTES:
        raise click.ClickException(f"{source}: larger than {MAX_FILE_BYTES} bytes")
    try:
        raw = read_section(data.decode("utf-8"), section, source)
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{source}: not UTF-8: {exc}") from exc
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    config, store = _settings_store(ctx)
    with store:
        found = _project(store, project, config)
        try:
            parse_section(section, raw, project_id=found["id"], label=f"project {found['slug']!r}",
                          file_quota_ids=frozenset(quota.id for quota in config.quotas))
            changed = store.set_project_setting(found["id"], section, raw)
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    if not changed:
        click.echo("No changes")
        return
    _cli_helpers()._publish_change(ctx, config, TOPIC_PROJECTS)
    click.echo(f"stored {section} for project {found['slug']!r}; a running server follows within a second")


@settings.command("clear")
@click.argument("project")
@click.argument("section", type=click.Choice(SECTIONS))
@click.pass_context
def settings_clear(ctx: click.Context, project: str, section: str) -> None:
    """Remove PROJECT's own SECTION: the config file's section applies again."""
    config, store = _settings_store(ctx)
    with store:
        found = _project(store, project, config)
        try:
            changed = store.set_project_setting(found["id"], section, None)
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    if not changed:
        click.echo(f"project {found['slug']!r} has no {section} of its own")
        return
    _cli_helpers()._publish_change(ctx, config, TOPIC_PROJECTS)
    click.echo(f"cleared {section} of project {found['slug']!r}; the config file's applies again")


@settings.command("show")
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: stored sections and effective settings.")
@click.pass_context
def settings_show(ctx: click.Context, project: str, as_json: bool) -> None:
    """Print PROJECT's stored sections and the settings in effect for it."""
    config, store = _settings_store(ctx)
    with store:
        found = _project(store, project, config)
        try:
            stored = store.project_settings(found["id"]).get(found["id"], {})
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    view = ProjectSettings.from_config(config)
    view.replace({found["id"]: stored})
    effective = {"filters": _plain(view.filters_of(found["id"])),
                 "scrubbing": _plain(view.scrubbing_of(found["id"])),
                 "quotas": _plain(view.quotas_of(found["id"]))}
    if as_json:
        click.echo(json.dumps({"project": {"id": found["id"], "slug": found["slug"]}, "stored": stored,
                               "effective": effective}, indent=2))
        return
    click.echo(f"project {found['slug']!r} (id {found['id']})")
    for section in SECTIONS:
        origin = "config file's" if section not in stored else (
            "own, added to the config file's" if section == "quotas" else "own, merged over the config file's")
        click.echo(f"{section} ({origin}): {json.dumps(effective[section])}")

