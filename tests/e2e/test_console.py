"""The moderator console (/console) in a real browser (Debian's Chromium,
driven by Playwright) against `adtech run`: sign-in, the queue, approve and
reject, the results as they settle, and what needs an operator. Everything
the test prepares goes through the public HTTP API; the browser sees only
what the gateway serves. Screenshots of the main screens are written under
bench-results/console/.

Skipped, saying why, when Playwright or a Chromium cannot be found
(scripts/ensure_chromium.sh installs Debian's when run as root)."""
import contextlib
import datetime as dt
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from tests.e2e.client import handle, iso, mint
from tests.e2e.conftest import ROOT, run_stack
from tests.harness import free_slot

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

pytestmark = pytest.mark.slow

CHROMIUM_CANDIDATES = (os.environ.get("CHROMIUM_PATH", ""), "/usr/bin/chromium", "/usr/bin/chromium-browser")
SHOTS = ROOT / "bench-results" / "console"
PRICE = 2_500
LEAD_MS = 500
WAIT_S = 20.0


def chromium_path() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


# ---- the stack and the API, as a test's setup uses them ------------------------

class Api:
    """Setup over HTTP, synchronously (the browser test is synchronous)."""

    def __init__(self, stack):
        self.stack = stack
        self.http = httpx.Client(base_url=stack.base_url, timeout=30.0)
        self.admin = self.token("admin")

    def token(self, role: str, sub: str | None = None, ttl: int = 3600) -> tuple[str, str]:
        sub = sub or str(uuid.uuid4())
        return sub, mint(self.stack.jwt_secret, role, sub, ttl=ttl)

    def ok(self, method: str, path: str, user, expect: int = 200, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {user[1]}", **kwargs.pop("headers", {})}
        response = self.http.request(method, path, headers=headers, **kwargs)
        assert response.status_code == expect, f"{method} {path} -> {response.status_code} {response.text}"
        return response.json()

    def deposit(self, user, amount: int) -> None:
        self.ok("GET", "/api/wallet", user)
        self.ok("POST", f"/api/wallets/{user[0]}/deposits", self.admin, 201, json={"amount": amount},
                headers={"Idempotency-Key": uuid.uuid4().hex})

    def channel(self, title: str = "Morning news") -> dict:
        publisher = self.token("publisher")
        channel = self.ok("POST", "/api/channels", publisher, 201,
                          json={"title": title, "handle": handle(), "pricePerPost": PRICE})
        return self.ok("POST", f"/api/channels/{channel['id']}/approve", self.admin)

    def submitted(self, *, funds: int = PRICE, text: str = "Fresh coffee every morning", campaign: str = "Launch",
                  at: dt.datetime | None = None, channel: dict | None = None) -> tuple[tuple[str, str], dict]:
        """(advertiser, target): a submitted target of an advertiser with `funds`."""
        advertiser = self.token("advertiser")
        if funds:
            self.deposit(advertiser, funds)
        else:
            self.ok("GET", "/api/wallet", advertiser)
        channel = channel or self.channel()
        made = self.ok("POST", "/api/campaigns", advertiser, 201, json={
            "name": campaign, "creatives": [{"text": text, "mediaUrl": "https://example.com/ad.png"}]})
        self.ok("POST", f"/api/campaigns/{made['id']}/activate", advertiser)
        target = self.ok("POST", f"/api/campaigns/{made['id']}/targets", advertiser, 201,
                         json={"channelId": channel["id"], "scheduledAt": iso(at or free_slot())})
        target = self.ok("POST", f"/api/campaigns/{made['id']}/targets/{target['id']}/submit", advertiser)
        return advertiser, target

    def target(self, target: dict) -> dict:
        return self.ok("GET", f"/api/campaigns/{target['campaignId']}/targets/{target['id']}", self.admin)

    def until(self, read, check, timeout: float = WAIT_S):
        deadline = time.monotonic() + timeout
        while True:
            value = read()
            if check(value):
                return value
            assert time.monotonic() < deadline, f"not reached within {timeout} s: {value}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: install Debian's (apt-get install chromium; `make test` does it as root) "
                    "or set CHROMIUM_PATH")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def stack(browser):
    # A 1 s Bot API timeout and a stalled sendMessage leave a job whose
    # outcome is unknown: needs_review, as when its worker dies mid-call.
    with run_stack(CAMPAIGN_TARGET_MIN_LEAD_MS=str(LEAD_MS), PUBLISHER_POLL_MS="100", TELEGRAM_TIMEOUT_S="1",
                   OUTBOX_POLL_MS="100") as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack):
    api = Api(stack)
    yield api
    api.http.close()


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=stack.base_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error"
            and "Failed to load resource" not in message.text else None)
    yield page
    context.close()
    assert errors == [], f"the page logged errors: {errors}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, token: str) -> None:
    page.goto("/console")
    page.get_by_label(re.compile("Bearer token")).fill(token)
    page.get_by_role("button", name="Sign in").click()


def queue_item(page, target: dict):
    return page.locator(f'li.item[data-target-id="{target["id"]}"]')


expect = sync_api.expect


# ---- the tests -----------------------------------------------------------------

def test_an_admin_signs_in_sees_the_queue_and_approves_with_one_click(page, api):
    _, target = api.submitted(campaign="Spring sale", text="20% off all week")
    sign_in(page, api.admin[1])
    expect(page.locator("#who")).to_contain_text(api.admin[0])
    expect(page.locator("#who-role")).to_have_text("admin")
    item = queue_item(page, target)
    expect(item).to_contain_text("Spring sale")
    expect(item).to_contain_text("20% off all week")
    expect(item.locator(".funds")).to_contain_text("Covers the price")
    scheduled = item.locator("time").first
    assert scheduled.get_attribute("title") == "UTC: " + iso(dt.datetime.fromisoformat(
        target["scheduledAt"].replace("Z", "+00:00")))
    shot(page, "queue")

    item.get_by_role("button", name="Approve").dblclick()
    expect(item.locator(".result")).to_contain_text("Approved: post job")
    expect(item.locator(".result")).to_have_count(1)
    expect(item.get_by_role("button", name="Approve")).to_be_disabled()
    assert api.target(target)["status"] == "approved"
    # The token never shows in the address bar.
    assert api.admin[1] not in page.url
