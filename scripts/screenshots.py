"""Take the README's screenshots of the web UI: ``python scripts/screenshots.py [OUT_DIR]``.

Starts ``minisentry serve`` on a config in a temp dir, feeds it with the real ``sentry-sdk``
(exceptions with stack traces, tags, breadcrumbs, users, contexts, the request through the SDK's WSGI
middleware and a log file attached; a message, sessions of two releases, cron check-ins, events
dropped by a filter and by a quota) and, when the deploys example plugin is installed, two deploy
markers for its issue-page panel (run with ``PYTHONPATH=plugins/minisentry-deploys`` to use the
plugin from this checkout), creates a user with ``minisentry users create``, signs in with
Selenium driving Debian's ``chromium`` + ``chromium-driver`` and saves a PNG of each main page into
OUT_DIR (default ``docs/screenshots/``). Blocks for about half a minute; raises (and exits non-zero)
when the server, the browser or the data does not come up.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware

KEY, OTHER_KEY = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
EMAIL, PASSWORD = "admin@example.com", "screenshots only"
CONFIG = """
[server]
host = "127.0.0.1"
port = 0
[storage]
path = "{store}"
[stages]
monitor_check_interval = 0.5
[filters]
error_messages = ["*IgnoredError*"]
[[projects]]
id = 1
slug = "shop"
keys = ["{key}"]
[[projects]]
id = 2
slug = "billing"
keys = ["{other_key}"]
[[quotas]]
id = "billing-errors"
categories = ["error"]
project = 2
limit = 3
window = 3600
reason_code = "too_many_errors"
"""
PAGES = ("projects", "issues", "issue", "issue-tags", "issue-event", "stats", "releases", "monitors", "status")


class IgnoredError(Exception):
    """Raised for the events the ``error_messages`` filter drops."""


def charge_card(cart: dict) -> float:
    return cart["total"] / cart["items"]


def parse_quantity(text: str) -> int:
    return int(text)


def load_profile(users: dict, user_id: str) -> dict:
    return users[user_id]


def start_server(config: Path) -> tuple[subprocess.Popen, str]:
    # The log goes to a file: a pipe nobody reads would block the server once it is full.
    log = config.with_suffix(".log")
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "minisentry", "--config", str(config), "serve"],
                                stdout=sink, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        match = re.search(r"listening on (http://[^\s]+:\d+)", log.read_text())
        if match:
            return proc, match.group(1)
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"minisentry serve did not start:\n{log.read_text()[-3000:]}")


def wait_for(db: Path, sql: str, expected: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            try:
                if conn.execute(sql).fetchone()[0] == expected:
                    return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {sql!r} to be {expected!r}")


def spread_over_a_day(event: dict, hint: dict) -> dict:
    """``before_send``: date each error back by up to 20 hours, so the charts show more than one bar."""
    spread_over_a_day.count += 1  # type: ignore[attr-defined]
    hours_ago = (spread_over_a_day.count * 5) % 21  # type: ignore[attr-defined]
    event["timestamp"] = time.time() - hours_ago * 3600 - 60
    return event


spread_over_a_day.count = 0  # type: ignore[attr-defined]


def init(dsn: str, release: str, **options: object) -> None:
    sentry_sdk.init(dsn=dsn, release=release, environment="production", default_integrations=False,
                    auto_enabling_integrations=False, auto_session_tracking=False, include_local_variables=True,
                    **options)


def checkout(environ: dict, start_response: object) -> list[bytes]:
    """The shop's WSGI checkout: leaves breadcrumbs, then fails in charge_card."""
    sentry_sdk.get_current_scope().set_transaction_name("POST /checkout")  # the issue's culprit
    sentry_sdk.add_breadcrumb(category="navigation", message="/cart -> /checkout", level="info")
    sentry_sdk.add_breadcrumb(category="http", message="GET https://api.payments.example/v1/quote",
                              data={"status_code": 200, "duration_ms": 182})
    sentry_sdk.add_breadcrumb(category="ui.click", message="button#pay", level="info")
    # The middleware's own isolation scope: the log goes with this request's event only.
    sentry_sdk.get_isolation_scope().add_attachment(bytes=b"quote ok\ncharge failed: items = 0\n",
                                                    filename="checkout.log", content_type="text/plain")
    return [str(charge_card({"total": 42, "items": 0})).encode()]


def send_checkout(i: int) -> None:
    """One charge_card failure through the SDK's WSGI middleware: it adds the request."""
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/checkout", "QUERY_STRING": f"cart={1000 + i}",
               "SERVER_NAME": "shop.example.com", "SERVER_PORT": "443", "wsgi.url_scheme": "https",
               "HTTP_HOST": "shop.example.com", "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0",
               "HTTP_ACCEPT": "application/json", "REMOTE_ADDR": "203.0.113.7"}
    try:
        SentryWsgiMiddleware(checkout)(environ, lambda status, headers: None)
    except ZeroDivisionError:
        pass  # reported by the middleware


def send_deploys(base: str) -> None:
    """Deploy markers of both shop releases, if the deploys example plugin serves its endpoint."""
    for release, hours_ago in (("shop@1.3.0", 30), ("shop@1.4.0", 22)):
        answer = httpx.post(f"{base}/api/1/deploys/?sentry_key={KEY}", json={
            "release": release, "environment": "production", "timestamp": time.time() - hours_ago * 3600,
            "url": f"https://ci.example.com/shop/{release}"})
        if answer.status_code == 404:
            print("the deploys plugin is not installed: no Deploys panel")
            return


def send_errors(base: str) -> None:
    host = base.split("://", 1)[1]
    for release, rounds in (("shop@1.3.0", 2), ("shop@1.4.0", 4)):
        init(f"http://{KEY}@{host}/1", release, before_send=spread_over_a_day)
        for i in range(rounds * 3):
            with sentry_sdk.new_scope() as scope:
                scope.set_tag("browser", ("Chrome 126", "Firefox 127", "Safari 17.5")[i % 3])
                scope.set_tag("os", ("Windows 11", "macOS 14", "Ubuntu 24.04", "Android 14")[i % 4])
                scope.set_tag("customer", ("acme", "globex", "initech", "umbrella", "hooli")[i % 5])
                scope.set_user({"id": f"user-{i % 7}", "email": f"customer{i % 7}@example.com",
                                "username": ("ann", "bob", "cy", "dee", "eve", "fay", "gus")[i % 7]})
                scope.set_context("app", {"app_name": "shop", "app_version": release.split("@")[1]})
                scope.set_context("cart", {"items": 0, "total": 42, "currency": "EUR"})
                calls = (lambda: send_checkout(i), lambda: parse_quantity("two"),
                         lambda: load_profile({}, f"user-{i}"))
                for n, call in enumerate(calls):
                    if n and i % 2:  # every round fails in charge_card, every other one in the rest too
                        continue
                    try:
                        call()
                    except Exception:
                        sentry_sdk.capture_exception()
        sentry_sdk.capture_message("Payment provider answered slowly", level="warning")
        for _ in range(3):
            try:
                raise IgnoredError("known noisy error")
            except IgnoredError:
                sentry_sdk.capture_exception()
        sentry_sdk.flush(timeout=10)
        sentry_sdk.get_client().close()
    init(f"http://{OTHER_KEY}@{host}/2", "billing@7.1")
    for _ in range(8):  # three fit the quota; the rest are rate limited (or discarded by the SDK)
        try:
            charge_card({"total": 1, "items": 0})
        except ZeroDivisionError:
            sentry_sdk.capture_exception()
        sentry_sdk.flush(timeout=10)
    sentry_sdk.get_client().close()


def send_sessions_and_check_ins(base: str) -> None:
    host = base.split("://", 1)[1]
    for release, total, crashed in (("shop@1.3.0", 20, 1), ("shop@1.4.0", 12, 3)):
        init(f"http://{KEY}@{host}/1", release)
        scope = sentry_sdk.get_isolation_scope()
        for i in range(total):
            scope.start_session(session_mode="application")
            if i < crashed:
                scope._session.update(status="crashed")  # what the SDK does for an unhandled exception
            scope.end_session()
        if release == "shop@1.4.0":
            config = {"schedule": {"type": "crontab", "value": "0 3 * * *"}, "checkin_margin": 5, "max_runtime": 30}
            capture_checkin(monitor_slug="nightly-report", status="ok", duration=12.4, monitor_config=config)
            backup = {"schedule": {"type": "interval", "value": 6, "unit": "hour"}, "checkin_margin": 10}
            check_in = capture_checkin(monitor_slug="db-backup", status="in_progress", monitor_config=backup)
            capture_checkin(monitor_slug="db-backup", check_in_id=check_in, status="error", duration=95.0)
        sentry_sdk.flush(timeout=10)
        sentry_sdk.get_client().close()


def add_missed_monitor(store_path: Path) -> None:
    """A monitor last seen three hours ago on an hourly schedule: the server's clock marks it missed."""
    from minisentry.backends.sqlite import SqliteStore
    from minisentry.monitors import CheckIn

    with SqliteStore(store_path) as store:
        store.record_check_ins([CheckIn(1, uuid.uuid4().hex, "hourly-sync", "ok", time.time() - 3 * 3600,
                                        config={"schedule": {"type": "crontab", "value": "0 * * * *"},
                                                "timezone": "UTC", "checkin_margin": 1, "max_runtime": None})])


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        raise RuntimeError("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                 "--hide-scrollbars", "--window-size=1280,900", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def shoot(base: str, db: Path, out: Path) -> list[Path]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (issue_id,) = conn.execute("SELECT id FROM issues WHERE project_id = 1 ORDER BY count DESC, id LIMIT 1").fetchone()
    driver = browser()
    # The page area itself is 1280x900, whatever room the (headless) browser's frame takes.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    saved = []
    try:
        driver.get(f"{base}/ui/login")
        driver.find_element(By.NAME, "email").send_keys(EMAIL)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "form[action='/ui/login'] button").click()
        WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith("/ui/"))
        urls = {"projects": "/ui/", "issues": "/ui/projects/shop/issues/", "issue": f"/ui/issues/{issue_id}/",
                "issue-tags": f"/ui/issues/{issue_id}/#tags", "issue-event": f"/ui/issues/{issue_id}/#breadcrumbs",
                "stats": "/ui/stats/", "releases": "/ui/releases/", "monitors": "/ui/monitors/",
                "status": "/ui/status/"}
        for name in PAGES:
            driver.get(base + urls[name])
            if name == "projects":  # show one project's SDK snippets opened
                driver.find_element(By.CSS_SELECTOR, "#setup-shop summary").click()
            path = out / f"{name}.png"
            driver.save_screenshot(str(path))
            saved.append(path)
    finally:
        driver.quit()
    return saved


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "docs" / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store.sqlite"
        config = Path(tmp) / "minisentry.toml"
        config.write_text(CONFIG.format(store=store, key=KEY, other_key=OTHER_KEY))
        proc, base = start_server(config)
        try:
            created = subprocess.run([sys.executable, "-m", "minisentry", "--config", str(config), "users", "create",
                                      EMAIL, "--password-stdin"], input=PASSWORD + "\n", text=True,
                                     capture_output=True, timeout=60)
            if created.returncode != 0:
                raise RuntimeError(f"users create failed: {created.stderr}")
            send_deploys(base)
            send_errors(base)
            send_sessions_and_check_ins(base)
            add_missed_monitor(store)
            wait_for(store, "SELECT sum(started) FROM release_health", 32)
            wait_for(store, "SELECT count(*) FROM monitors WHERE status = 'missed'", 1)
            wait_for(store, "SELECT count(*) FROM events WHERE project_id = 2", 3)
            for path in shoot(base, store, out):
                print(f"{path} ({path.stat().st_size // 1024} KB)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
