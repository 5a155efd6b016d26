"""The event view's sections, attachment filenames and plugin panels without a server (fuzzed where it pays)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry import hookimpl
from minisentry.errors import PluginError
from minisentry.plugin_manager import make_plugin_manager
from minisentry.web.downloads import content_disposition, safe_filename
from minisentry.web.event_sections import MAX_BREADCRUMBS, breadcrumbs_section, to_text
from minisentry.web.event_view import render_event
from minisentry.web.html import Markup, render
from minisentry.web.panels import collect_panels, render_panels

XSS = "<script>alert(1)</script>"
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.just(XSS)
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
    st.text(max_size=10) | st.just(XSS), inner, max_size=5), max_leaves=40)
_KEYS = ("breadcrumbs", "request", "contexts", "user", "sdk", "extra", "tags", "logentry", "exception", "threads",
         "stacktrace", "message", "timestamp", "release", "environment", "platform")


@settings(max_examples=300)
@given(data=st.dictionaries(st.sampled_from(_KEYS), _JSON), attachments=st.lists(st.fixed_dictionaries(
    {"id": st.integers(1, 2**40), "filename": st.text(max_size=20) | st.just(XSS),
     "content_type": st.text(max_size=10), "size": st.integers(-1, 2**40) | st.none()}), max_size=3))
def test_any_event_json_renders_and_stays_inert(data, attachments):
    html = render_event({"event_id": "e" * 32, "data": data}, attachments=attachments)
    assert isinstance(html, Markup) and "<script" not in html


def test_too_deep_values_are_named_not_raised():
    deep: object = "bottom"
    for _ in range(400):
        deep = [deep]
    assert to_text(deep) == "(too deeply nested to show)"
    html = render_event({"event_id": "e" * 32, "data": {"extra": {"deep": deep}, "contexts": {"c": {"d": deep}}}})
    assert "too deeply nested" in html


def test_breadcrumbs_show_the_newest_in_time_order_bounded():
    crumbs = [{"timestamp": 1_700_000_000 + i, "message": f"crumb {i}", "category": "nav"} for i in range(150)]
    html = breadcrumbs_section({"breadcrumbs": {"values": crumbs}})
    assert "crumb 49<" not in html and "crumb 50<" in html and "crumb 149<" in html
    assert html.index("crumb 50<") < html.index("crumb 149<")
    assert f"The newest {MAX_BREADCRUMBS} of 150 breadcrumbs." in html
    assert "2023-11-14 22:15:49.000 UTC" in html  # crumb 149


@pytest.mark.parametrize("name, expected", [
    ("app.log", 'attachment; filename="app.log"'),
    ("../../etc/passwd", 'attachment; filename="passwd"'),
    ('a"b;c\r\nSet-Cookie: x', 'attachment; filename="a_b_cSet-Cookie: x"'),
    ("", 'attachment; filename="attachment"'),
    ("..", 'attachment; filename="attachment"'),
    ("naïve.txt", "attachment; filename=\"na_ve.txt\"; filename*=UTF-8''na%C3%AFve.txt"),
])
def test_content_disposition_is_safe(name, expected):
    assert content_disposition(name) == expected


@given(st.text())
def test_any_filename_gives_one_safe_header_line(name):
    value = content_disposition(name)
    assert value.isascii() and "\r" not in value and "\n" not in value and value.count('"') == 2
    assert "/" not in safe_filename(name) and "\\" not in safe_filename(name)


class Panel:
    def __init__(self, name, title="T", result=None, error=None):
        self.name, self.title, self.result, self.error = name, title, result, error

    def render(self, issue, db):
        if self.error is not None:
            raise self.error
        return self.result


def plugin(*panels):
    class Plugin:
        @hookimpl
        def minisentry_register_ui_panels(self):
            return list(panels)

    return Plugin()


def test_duplicate_and_broken_panels_stop_startup():
    pm = make_plugin_manager(entry_points=False, extra=(plugin(Panel("notes")), plugin(Panel("notes"))))
    with pytest.raises(PluginError, match="'notes' registered by both"):
        collect_panels(pm)
    no_render = type("NoRender", (), {"name": "x", "title": "X"})()
    with pytest.raises(PluginError, match=r"ui panel 'x' has no render"):
        collect_panels(make_plugin_manager(entry_points=False, extra=(plugin(no_render),)))
    with pytest.raises(PluginError, match="has no title"):
        collect_panels(make_plugin_manager(entry_points=False, extra=(plugin(Panel("y", title="")),)))
    with pytest.raises(PluginError, match="the name must match"):
        collect_panels(make_plugin_manager(entry_points=False, extra=(plugin(Panel("Bad Name")),)))


class Reader:
    """The read-only store's ``read_plugin`` without a file."""

    def read_plugin(self, read):
        return read("db")


@pytest.mark.anyio
async def test_panels_are_isolated_and_only_markup_is_trusted(caplog):
    panels = {p.name: p for p in (Panel("good", "Good", render("<b>$v</b>", v=XSS)), Panel("text", "Text", XSS),
                                  Panel("boom", "Boom", error=RuntimeError("panel bug")),
                                  Panel("odd", "Odd", result={"not": "html"}))}
    with caplog.at_level(logging.ERROR, logger="minisentry.plugins"):
        html = await render_panels(panels, {"id": 7}, Reader())
    assert "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>" in html
    assert '<section class="panel" id="panel-text"><h2>Text</h2><p class="panel-text">&lt;script&gt;' in html
    assert "panel boom failed" in html and "panel odd failed" in html and "<script" not in html
    assert "RuntimeError: panel bug" in caplog.text  # logged with its traceback
    assert await render_panels(panels, {"id": 7}, None) == ""
