"""The web UI in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium):
sign in, open the issue the real sentry-sdk created, see its stack trace, resolve it, send another
event, see it reopen, go to the older event. ``scripts/test.sh`` installs the browser; under CI=true a missing one fails."""

from __future__ import annotations

import os
import shutil

import pytest

from ..e2e.test_sdk import wait_for
from .test_web_e2e import EMAIL, PASSWORD, query, send_sdk_error, ui  # noqa: F401  (ui: the fixture)

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        message = "Debian's chromium and chromium-driver are not installed (scripts/test.sh installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_sign_in_triage_and_regression_in_a_real_browser(ui, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def status_becomes(expected: str) -> None:
        # A form POST's next page may still be loading: re-read the status until it shows (30 s guard).
        WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda driver: driver.find_element(By.ID, "status").text == expected)

    def url_becomes(suffix: str) -> None:
        WebDriverWait(browser, 30).until(lambda driver: driver.current_url.endswith(suffix))

    server, _, db = ui
    send_sdk_error(server.dsn())
    issue_id = wait_for(lambda: query(db, "SELECT id FROM issues"))[0][0]

    browser.get(f"{server.url}/ui/")
    assert browser.current_url.endswith("/ui/login")
    browser.find_element(By.NAME, "email").send_keys(EMAIL)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form[action='/ui/login'] button").click()
    url_becomes("/ui/")
    assert server.dsn() in browser.find_element(By.TAG_NAME, "main").text

    browser.find_element(By.LINK_TEXT, "demo").click()
    browser.find_element(By.PARTIAL_LINK_TEXT, "ZeroDivisionError").click()
    url_becomes(f"/ui/issues/{issue_id}/")
    in_app = browser.find_elements(By.CSS_SELECTOR, ".frame.in-app")
    assert any("raise_in_checkout" in frame.text for frame in in_app)
    assert "return total / cart[\"items\"]" in browser.find_element(By.CSS_SELECTOR, ".context .current").text
    assert browser.find_element(By.ID, "status").text == "unresolved"

    browser.find_element(By.XPATH, "//button[text()='Resolve']").click()
    status_becomes("resolved")
    assert query(db, "SELECT status FROM issues") == [("resolved",)]

    send_sdk_error(server.dsn())
    wait_for(lambda: query(db, "SELECT status FROM issues") == [("unresolved",)])
    browser.refresh()
    status_becomes("unresolved")
    assert browser.find_element(By.XPATH, "//button[text()='Resolve']")

    # Two events now: "Older" leads from the newest to the first one, whose own "Older" is plain text.
    ((first_id,),) = query(db, "SELECT event_id FROM events ORDER BY timestamp LIMIT 1")
    browser.find_element(By.ID, "nav-older").click()
    url_becomes(f"/ui/issues/{issue_id}/events/{first_id}/")
    assert browser.find_element(By.ID, "nav-older").tag_name == "span"
    assert browser.find_element(By.ID, "nav-newer").tag_name == "a"
