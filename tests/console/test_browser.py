"""The console in a real browser: Debian's chromium, driven by Selenium through Debian's
chromium-driver, against real nodes. Logs in, watches an enquiry arrive in the feed,
approves a held release and sees FR's agency receive it, denies another, is refused as a
viewer (no approve button, and its POST) and for a form without its token, logs out; and
writes a screenshot of each page at 1366×768 to docs/console/, which docs/console.md
shows."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from support.console import (
    HELD,
    PASSWORDS,
    Agency,
    add_accounts,
    console_url,
    with_approvals,
)
from support.network import ask, load

from connector.approvals.service import APPROVALS
from connector.demo import DemoNode, network
from connector.outbound.agencies import add_agency
from connector.vocabulary import AgencyKind, Category

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
IVAN = {"last_name": "Shcherbakov", "first_name": "Ivan", "birth_date": "1980-02"}
WAIT_S = 15

T = TypeVar("T")
Net = dict[str, DemoNode]


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    async with network(tmp_path / "net", ["FR", "DE"], configure=with_approvals) as n:
        load(n)
        add_accounts(n["DE"])
        s = n["DE"].node.settings
        agencies = s.state_path(s.federation.agencies_file)
        add_agency(agencies, "border-cdg", AgencyKind.BORDER, now=n["DE"].node.clock())
        add_agency(agencies, "customs-hav", AgencyKind.CUSTOMS, now=n["DE"].node.clock())
        yield n


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/test.sh)")
    # Never a downloaded browser or driver: Debian's, named here.
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1366,768",
        "--lang=en-GB",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


async def _in_browser(fn: Callable[[], T]) -> T:
    """Selenium blocks: it runs in a thread while the node serves on the loop."""
    return await asyncio.to_thread(fn)


def _shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # The whole page's height at 1366 wide, as an operator scrolls it.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, max(768, min(int(height) + 140, 2400)))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1366, 768)


def _log_in(driver: Any, base: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()


def _wait(driver: Any, condition: Callable[[Any], Any]) -> Any:
    """Until `condition` holds; an element replaced by the next page meanwhile is looked
    for again, not a failure."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(condition)


async def test_an_operators_session_in_chromium(net: Net, chromium: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = chromium
    base = console_url(net["DE"])
    await ask(net, "FR", [(Category.VEHICLES, {"vin": "WVWZZZ1JZXW000001"})])

    def login_page() -> None:
        driver.get(f"{base}/")
        assert driver.current_url.startswith(f"{base}/login")
        _shot(driver, "login")
        _log_in(driver, base, "ada")
        _wait(driver, lambda d: d.current_url == f"{base}/")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Overview"

    await _in_browser(login_page)

    # An enquiry arrives while the overview is open: the feed shows it without a reload.
    def feed_rows() -> int:
        return len(driver.find_elements(By.CSS_SELECTOR, "#feed tr"))

    before = await _in_browser(feed_rows)
    await ask(net, "FR", [(Category.WANTED_PERSONS, IVAN)])

    def arrived() -> None:
        row = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#feed tr.fresh"))[0]
        assert "FR" in row.text
        assert "wanted_persons" in row.text
        assert "hit" in row.text
        assert feed_rows() == before + 1
        assert driver.find_element(By.CSS_SELECTOR, '[data-counter="hits"]').text == "1"
        _shot(driver, "overview")

    await _in_browser(arrived)

    def every_page() -> None:
        # Keyboard: the skip link is the first stop, and lands on the page's content.
        driver.get(f"{base}/enquiries")
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        focused = driver.switch_to.active_element
        assert focused.get_attribute("class") == "skip"
        _shot(driver, "enquiries")
        driver.find_element(By.CSS_SELECTOR, "tbody a[href^='/enquiries/']").click()
        _wait(driver, lambda d: "Enquiry " in d.find_element(By.TAG_NAME, "h1").text)
        _shot(driver, "enquiry")
        driver.get(f"{base}/peers")
        _shot(driver, "peers")
        driver.get(
            f"{base}/policy?from=FR&agency_kind=police&purpose=criminal_investigation"
            "&category=wanted_persons#explain"
        )
        assert "persons for FR" in driver.find_element(By.ID, "main").text
        _shot(driver, "policy")
        driver.get(f"{base}/notifications")
        _shot(driver, "notifications")
        driver.get(f"{base}/agencies")
        _shot(driver, "agencies")
        # Every form field has a label.
        for path in ("/enquiries", "/policy", "/"):
            driver.get(f"{base}{path}")
            for field in driver.find_elements(
                By.CSS_SELECTOR, "main input:not([type=hidden]), main select"
            ):
                fid = field.get_attribute("id")
                assert driver.find_elements(By.CSS_SELECTOR, f"label[for='{fid}']"), (path, fid)

    await _in_browser(every_page)

    # A release held for an approver: approved in the browser, received by FR's agency.
    async with aiohttp.ClientSession() as http:
        agency = Agency(net["FR"], http)
        first = await agency.check(HELD)

        def approve() -> None:
            driver.get(f"{base}/approvals")
            main = driver.find_element(By.ID, "main")
            assert "Jean Exemple" in main.text  # the record that would leave, beside…
            assert "DE1234567" in main.text  # …what was asked
            _shot(driver, "approvals")
            driver.find_element(By.CSS_SELECTOR, "textarea[name=reason]").send_keys(
                "the holder's name matches the traveller"
            )
            driver.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
            _wait(driver, lambda d: "Nothing waits." in d.find_element(By.ID, "main").text)
            assert "approved" in driver.find_element(By.CSS_SELECTOR, "table").text

        await _in_browser(approve)
        released = await agency.released(first["id"])
        hit = released["releases"][0]["results"][0]["hits"][0]
        assert hit["record"]["holder_name"] == "Jean Exemple"

        second = await agency.check(HELD)

        def deny() -> None:
            driver.get(f"{base}/approvals")
            driver.find_element(By.CSS_SELECTOR, "textarea[name=reason]").send_keys(
                "not the traveller at the desk"
            )
            driver.find_element(By.CSS_SELECTOR, "button[value=deny]").click()
            _wait(driver, lambda d: "Nothing waits." in d.find_element(By.ID, "main").text)

        await _in_browser(deny)
        refused = await agency.released(second["id"])
        assert refused["releases"][0]["results"][0]["status"] == "denied"
        third = await agency.check(HELD)  # left waiting for the viewer to look at
        assert third["checks"][0]["peers"][0]["approval"]["status"] == "pending"

    def forged_form_is_refused() -> None:
        # A form posted without the session's token (as another site would build it).
        driver.get(f"{base}/agencies")
        driver.execute_script(
            "const f = document.createElement('form'); f.method = 'post';"
            "f.action = '/agencies/border-cdg/disable'; document.body.appendChild(f); f.submit();"
        )
        _wait(driver, lambda d: "form_expired" in d.page_source)
        driver.get(f"{base}/agencies")
        assert "Disable" in driver.find_element(By.ID, "main").text  # still enabled

    await _in_browser(forged_form_is_refused)

    def logout() -> None:
        driver.find_element(By.CSS_SELECTOR, "header form button").click()
        _wait(driver, lambda d: d.current_url.startswith(f"{base}/login"))
        driver.get(f"{base}/agencies")
        assert driver.current_url.startswith(f"{base}/login")

    await _in_browser(logout)

    def viewer_is_refused() -> None:
        _log_in(driver, base, "vic")
        _wait(driver, lambda d: d.current_url == f"{base}/")
        driver.get(f"{base}/agencies")
        main = driver.find_element(By.ID, "main")
        assert "border-cdg" in main.text
        assert not main.find_elements(By.TAG_NAME, "button")  # no button to act with
        # The POST the button would send, with this session's own token: still refused.
        driver.execute_script(
            "const f = document.createElement('form'); f.method = 'post';"
            "f.action = '/agencies/border-cdg/disable';"
            "const t = document.querySelector('input[name=csrf]').cloneNode();"
            "f.appendChild(t); document.body.appendChild(f); f.submit();"
        )
        _wait(driver, lambda d: "not_allowed" in d.page_source)
        assert "needs the admin role" in driver.find_element(By.ID, "main").text
        # The approvals queue: the viewer sees what waits, without a button to decide it…
        driver.get(f"{base}/approvals")
        main = driver.find_element(By.ID, "main")
        assert "Jean Exemple" in main.text
        assert not main.find_elements(By.CSS_SELECTOR, "button[value=approve]")
        # …and the POST the button would send is refused.
        approval = re.search(r"Approval (\S+) ·", main.text)
        assert approval is not None
        driver.execute_script(
            "const f = document.createElement('form'); f.method = 'post';"
            f"f.action = '/approvals/{approval.group(1)}';"
            "for (const [k, v] of [['verdict', 'approve'], ['reason', 'looks fine']]) {"
            "  const i = document.createElement('input'); i.name = k; i.value = v;"
            "  f.appendChild(i); }"
            "f.appendChild(document.querySelector('input[name=csrf]').cloneNode());"
            "document.body.appendChild(f); f.submit();"
        )
        _wait(driver, lambda d: "not_allowed" in d.page_source)
        assert "needs the approver role" in driver.find_element(By.ID, "main").text

    await _in_browser(viewer_is_refused)
    s = net["DE"].node.settings
    from connector.outbound.agencies import load_agencies

    assert load_agencies(s.state_path(s.federation.agencies_file))["border-cdg"].enabled
    assert net["DE"].service.peer_app[APPROVALS].count_pending() == 1  # the viewer's
    for name in ("login", "overview", "enquiries", "enquiry", "peers", "policy", "approvals"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000, name
