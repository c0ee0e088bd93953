"""The operator page (/ui) in a real browser: Playwright (PyPI) drives Debian's Chromium, as an
operator would click, against a real daemon with a real game server.

Signed in with the node token, the operator sees the servers, presses Start on one, and sees
`starting` then `running` arrive without a reload, the operation with its outcome, the console's
new lines, and the timeline. Signed in with an audit token, there are no buttons, and a forged form
post gets a 403. axe-core (npm, injected by the test) finds no serious accessibility violation.
Screenshots go to build/test-output/screenshots/ (or $WINGMAN_TEST_OUTPUT/screenshots)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.daemon import AUDIT_TOKEN, REPO, TOKEN, definition, unavailable

CHROMIUM = "/usr/bin/chromium"
# Headless as root, and off the network: without these Chromium reaches for hosts it cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = REPO / "api" / "ui" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = Path(os.environ.get("WINGMAN_TEST_OUTPUT", REPO / "build" / "test-output")) / "screenshots"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        unavailable("Debian's chromium is not installed; .ci/system.sh installs it")
    if not AXE.is_file():
        unavailable("axe-core is not installed; .ci/setup.sh test runs .ci/ui-assets.sh test")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url + "/ui")
    expect(page).to_have_url(url + "/ui/login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Servers")).to_be_visible()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def serious_violations(browser: Browser, url: str, cookies: list, paths: list[str]) -> dict[str, list[str]]:
    """axe-core's serious and critical findings on each page. Its script is put into the page by
    the test, past the page's own policy (which allows only the page's scripts)."""
    context = browser.new_context(bypass_csp=True)
    context.add_cookies(cookies)
    page = context.new_page()
    found = {}
    for path in paths:
        page.goto(url + path)
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => (await axe.run(document)).violations")
        bad = [f"{v['id']}: {v['help']}" for v in result if v["impact"] in ("serious", "critical")]
        if bad:
            found[path] = bad
    context.close()
    return found


def test_an_operator_starts_a_server_and_watches_it_come_up_without_a_reload(browser, daemon_process):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = daemon_process(servers=[server])
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, d.url, TOKEN)
    row = page.get_by_role("row").filter(has_text=uuid)
    expect(row).to_contain_text("offline")
    shot(page, "servers")

    page.get_by_role("link", name=uuid).click()
    expect(page.locator("#state")).to_have_text("offline")
    # Every state the badge shows, in order; and a mark that a reload would wipe.
    page.evaluate(
        """() => {
            window.stayed = true;
            window.states = [];
            new MutationObserver(() => window.states.push(document.querySelector('#state').textContent.trim()))
                .observe(document.querySelector('#state'), {childList: true, subtree: true, characterData: true});
        }"""
    )
    page.wait_for_function("() => document.querySelector('[sse-connect]') && window.htmx", timeout=WAIT_MS)
    timeline_before = page.locator("#timeline").get_attribute("src")
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator("#state")).to_have_text("running", timeout=WAIT_MS)
    assert page.evaluate("window.stayed") is True, "the page was reloaded"
    states = page.evaluate("window.states")
    assert states[-1] == "running" and "starting" in states, states
    operation = page.locator("#operations tr.operation").first
    expect(operation).to_contain_text("start", timeout=WAIT_MS)
    expect(operation).to_contain_text("succeeded", timeout=WAIT_MS)
    expect(page.locator("#console")).to_contain_text("Server started", timeout=WAIT_MS)
    # The timeline is drawn again once the operation is in the log, and loads.
    timeline_loaded = page.wait_for_function(
        "(before) => { const i = document.querySelector('#timeline');"
        " return i.getAttribute('src') !== before && i.complete && i.naturalWidth > 0; }",
        arg=timeline_before,
        timeout=WAIT_MS,
    )
    assert timeline_loaded
    shot(page, "server-running")

    page.get_by_role("link", name="Open the timeline").click()
    assert page.url.endswith(f"/ui/servers/{uuid}/timeline.svg")
    expect(page.locator("svg").first).to_be_visible()

    page.goto(d.url + "/ui/audit")
    expect(page.get_by_role("status")).to_contain_text("The log verifies")
    shot(page, "audit")

    cookies = context.cookies()
    assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies if c["name"] == "wingman_ui")
    pages = ["/ui", f"/ui/servers/{uuid}", "/ui/audit"]
    assert serious_violations(browser, d.url, cookies, pages) == {}
    context.close()
    assert TOKEN not in d.read_log()  # the token went in a form body, never into a URL or the log


def test_an_audit_token_sees_everything_and_presses_nothing(browser, daemon_process):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = daemon_process(servers=[server])
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, d.url, AUDIT_TOKEN)
    page.get_by_role("link", name=uuid).click()
    expect(page.locator("#state")).to_have_text("offline")
    expect(page.get_by_role("button", name="Start", exact=True)).to_have_count(0)
    expect(page.get_by_text("an audit token (read only)")).to_be_visible()
    shot(page, "server-audit-token")

    cookie = {c["name"]: c["value"] for c in context.cookies()}
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")  # the sign-out form's
    with httpx.Client(base_url=d.url, cookies=cookie, timeout=10, follow_redirects=False) as client:
        # Even with the session's own CSRF secret, an audit session may not act.
        refused = client.post(f"/ui/servers/{uuid}/power", data={"action": "start", "csrf": csrf})
        assert refused.status_code == 403
    context.close()
    with d.client() as c:
        assert c.get(f"/api/servers/{uuid}").json()["state"] == "offline"
        assert c.get("/api/events", params={"type": "power.requested"}).json()["events"] == []


def test_a_forged_form_post_gets_a_403_and_changes_nothing(daemon_process):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = daemon_process(servers=[server])
    with httpx.Client(base_url=d.url, timeout=10, follow_redirects=False) as client:
        signed = client.post("/ui/login", data={"token": TOKEN})
        assert signed.status_code == 303 and "wingman_ui" in client.cookies
        # A page of another site posting into the session: no CSRF secret, or a wrong one.
        assert client.post(f"/ui/servers/{uuid}/power", data={"action": "kill"}).status_code == 403
        forged = client.post(f"/ui/servers/{uuid}/power", data={"action": "kill", "csrf": "guess"})
        assert forged.status_code == 403
        # Without a session at all, the same.
        client.cookies.clear()
        assert client.post(f"/ui/servers/{uuid}/power", data={"action": "kill"}).status_code == 401
        assert client.post("/ui/login", data={"token": "wrong"}).status_code == 403
        assert client.get("/ui").headers["location"] == "/ui/login"
    with d.client() as c:
        assert c.get("/api/events", params={"type": "power.requested"}).json()["events"] == []
