"""The moderator console (/console) in a real browser (Debian's Chromium,
driven by Playwright) against `adtech run`: sign-in, the queue, approve and
reject, the results as they settle, and what needs an operator. Everything
the test prepares goes through the public HTTP API; the browser sees only
what the gateway serves. Screenshots of the main screens are written under
bench-results/console/.

Skipped, saying why, when Playwright or a Chromium cannot be found
(scripts/ensure_chromium.sh installs Debian's when run as root)."""
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
RECONNECT_S = 2.0  # common/clients.py: grpc.max_reconnect_backoff_ms


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
        self.owners: dict[str, dict] = {}  # a listed chat's handle -> its owner's Telegram account

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

    def own(self, publisher, name: str) -> dict:
        """The publisher's Telegram account, linked as a person links it
        (`/start <code>` to the stack's bot, through the stack's Bot API
        sandbox), made the creator of the chat `name`."""
        with httpx.Client(base_url=self.stack.sandbox_url, timeout=10.0,
                          headers=self.stack.sandbox_headers()) as sandbox:
            created = sandbox.post("/sandbox/users", json={})
            created.raise_for_status()
            account = created.json()
            link = self.ok("POST", "/api/me/telegram/link", publisher, 201)
            sandbox.post(f"/sandbox/users/{account['id']}/messages",
                         json={"text": f"/start {link['code']}"}).raise_for_status()
            self.until(lambda: self.ok("GET", "/api/me/telegram", publisher), lambda me: me["linked"])
            sandbox.put(f"/sandbox/channels/{name.lstrip('@')}/members/{account['id']}",
                        json={"status": "creator"}).raise_for_status()
        return account

    def channel(self, title: str = "Morning news") -> dict:
        """A chat its publisher owns in Telegram, listed (auto-accepting its
        orders: an approve queues the post) and approved."""
        publisher, name = self.token("publisher"), handle()
        self.owners[name] = self.own(publisher, name)
        channel = self.ok("POST", "/api/channels", publisher, 201,
                          json={"title": title, "handle": name, "pricePerPost": PRICE, "autoAccept": True})
        return self.ok("POST", f"/api/channels/{channel['id']}/approve", self.admin)

    def submitted(self, *, funds: int = PRICE, text: str = "Fresh coffee every morning", campaign: str = "Launch",
                  at: dt.datetime | None = None, channel: dict | None = None,
                  media: str | None = "https://example.com/ad.png") -> tuple[tuple[str, str], dict]:
        """(advertiser, target): a submitted target of an advertiser with `funds`."""
        advertiser = self.token("advertiser")
        if funds:
            self.deposit(advertiser, funds)
        else:
            self.ok("GET", "/api/wallet", advertiser)
        channel = channel or self.channel()
        made = self.ok("POST", "/api/campaigns", advertiser, 201, json={
            "name": campaign, "creatives": [{"text": text, **({"mediaUrl": media} if media else {})}]})
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


def console_page(browser, stack):
    """A fresh tab (1280×800) on the stack's gateway that must log no error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=stack.base_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error"
            and "Failed to load resource" not in message.text else None)
    yield page
    context.close()
    assert errors == [], f"the page logged errors: {errors}"


@pytest.fixture
def page(browser, stack):
    yield from console_page(browser, stack)


@pytest.fixture
def slow_page(browser, slow_stack):
    yield from console_page(browser, slow_stack)


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


def test_a_queue_of_five_is_worked_through_with_the_keyboard_and_the_mouse(page, api):
    # One of them was rejected before: the queue says so, and why.
    advertiser, again = api.submitted(campaign="Second try")
    api.ok("POST", f"/api/moderation/targets/{again['id']}/reject", api.admin, json={"reason": "Blurry image"})
    api.ok("POST", f"/api/campaigns/{again['campaignId']}/targets/{again['id']}/submit", advertiser)
    targets = [again] + [api.submitted(campaign=f"Campaign {n}")[1] for n in range(2, 6)]
    sign_in(page, api.admin[1])
    items = [queue_item(page, target) for target in targets]
    expect(items[0].locator(".history")).to_contain_text("Rejected before: “Blurry image”")
    expect(items[1].locator(".history")).to_have_text("None")

    # Keyboard: select the first, a approves it, j moves on, r goes to the reason.
    items[0].locator("h3").click()
    page.keyboard.press("a")
    expect(items[0].locator(".result")).to_contain_text("Approved: post job")
    page.keyboard.press("j")
    expect(items[1]).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("r")
    expect(items[1].locator(".reason")).to_be_focused()
    page.keyboard.type("Misleading price claims")
    page.keyboard.press("Enter")
    expect(items[1].locator(".result")).to_contain_text("Rejected: “Misleading price claims”")
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("a")
    expect(items[2].locator(".result")).to_contain_text("Approved: post job")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(items[2]).to_have_class(re.compile(r"\bselected\b"))

    # Mouse: a reason template, then a plain approve.
    items[3].get_by_label("Reason template").select_option(index=1)
    expect(items[3].get_by_label("Reason for rejecting")).to_have_value("The creative breaks the content policy")
    items[3].get_by_role("button", name="Reject").click()
    expect(items[3].locator(".result")).to_contain_text("Rejected: “The creative breaks the content policy”")
    items[4].get_by_role("button", name="Approve").click()
    expect(items[4].locator(".result")).to_contain_text("Approved: post job")
    expect(page.locator("#announcer")).to_contain_text("Approved")
    shot(page, "queue-decided")

    statuses = [api.target(target)["status"] for target in targets]
    assert statuses == ["approved", "rejected", "approved", "rejected", "approved"]
    assert api.target(targets[1])["moderationReason"] == "Misleading price claims"


def test_an_advertiser_who_cannot_pay_is_refused_with_402_and_nothing_is_held(page, api):
    _, target = api.submitted(funds=0, campaign="No money")
    sign_in(page, api.admin[1])
    item = queue_item(page, target)
    expect(item.locator(".funds")).to_contain_text("Does not cover the price")
    item.get_by_role("button", name="Approve").click()
    expect(item.locator(".result")).to_contain_text("cannot cover the price (402 insufficient_funds)")
    expect(item.get_by_role("button", name="Approve")).to_be_enabled()  # it may be tried again after a deposit
    shot(page, "insufficient-funds")
    assert api.target(target)["status"] == "submitted"


def test_a_wallet_in_another_currency_than_the_price_is_never_said_to_cover_it(page, api):
    _, target = api.submitted(campaign="Two currencies")
    # One currency is the rule now; a wallet in another (an older install's)
    # is what the console must still compare like with like against.
    page.route("**/api/wallets/*", lambda route: route.fulfill(json={
        "userId": "x", "currency": "EUR", "balance": 10**9, "held": 0, "pendingPayout": 0}))
    sign_in(page, api.admin[1])
    funds = queue_item(page, target).locator(".funds")
    expect(funds).to_contain_text("the currencies differ (price in USD")
    expect(funds).not_to_contain_text("Covers the price")
    expect(funds).to_have_class(re.compile("bad"))


def test_a_rejection_needs_a_reason(page, api):
    _, target = api.submitted(campaign="Reasonless")
    sign_in(page, api.admin[1])
    item = queue_item(page, target)
    item.get_by_role("button", name="Reject").click()
    expect(item.locator(".result")).to_contain_text("Write a reason")
    expect(item.get_by_label("Reason for rejecting")).to_be_focused()
    assert api.target(target)["status"] == "submitted"


def test_a_non_admin_is_refused_with_a_clear_page_and_can_sign_out(page, api):
    sub, token = api.token("advertiser")
    sign_in(page, token)
    expect(page.get_by_role("heading", name="This console is for admins")).to_be_visible()
    expect(page.locator("#refused-role")).to_have_text("advertiser")
    expect(page.locator("#view-queue")).to_be_hidden()
    shot(page, "not-an-admin")
    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_label(re.compile("Bearer token"))).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_token_the_gateway_refuses_brings_the_sign_in_back_with_the_reason(page, api):
    # A token that expires while the console is open: the next call is 401.
    _, token = api.token("admin", ttl=2)
    sign_in(page, token)
    expect(page.locator("#view-queue")).to_be_visible()
    time.sleep(2.2)
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#signin-reason")).to_contain_text("token has expired")
    assert page.evaluate("sessionStorage.length") == 0
    shot(page, "signed-out-expired")
    # Signed with another secret: refused on the first call.
    bad = mint("another-secret-entirely-0123456789", "admin", str(uuid.uuid4()))
    sign_in(page, bad)
    expect(page.locator("#signin-reason")).to_contain_text("token is not valid")
    # Not a JWT at all: refused in the page, nothing sent.
    page.get_by_label(re.compile("Bearer token")).fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("not a JWT")


def test_the_console_is_served_with_a_strict_policy_and_no_outside_asset(api):
    for path in ("/console", "/console/assets/console.js", "/console/assets/console.css", "/console/assets/nope.js"):
        response = api.http.get(path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    page = api.http.get("/console").text
    assert "<script>" not in page and " style=" not in page and "http" not in page.split("<body>")[1]
    assert api.http.get("/console/assets/console.js").headers["content-type"].startswith("text/javascript")


def test_the_console_fits_a_phone_without_horizontal_scrolling(browser, stack, api):
    _, target = api.submitted(campaign="A campaign with a rather long name to wrap on a narrow screen",
                              text="A long creative " * 20)
    context = browser.new_context(viewport={"width": 375, "height": 740}, base_url=stack.base_url, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, api.admin[1])
        expect(queue_item(page, target)).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        shot(page, "queue-phone")
        page.get_by_role("link", name="Needs an operator").click()
        expect(page.locator("#dead-status")).not_to_have_text("Loading…")
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    finally:
        context.close()


def test_an_operator_resolves_a_post_job_in_review_and_pays_out_a_withdrawal(page, api, stack):
    sandbox = httpx.Client(base_url=stack.sandbox_url, timeout=10.0, headers=stack.sandbox_headers())
    try:
        # The Bot API answers after the publisher's timeout: the outcome is unknown, the job needs review.
        # Only the post in the channel stalls: the bot's messages to people (sendMessage too) go through.
        channel = api.channel("Stalled channel")
        sandbox.post("/sandbox/faults", json={"method": "sendMessage", "kind": "stall_after_post", "count": 1,
                                              "stall_s": 3, "chat_type": "channel"}).raise_for_status()
        _, target = api.submitted(channel=channel, media=None,
                                  at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.5))
        api.ok("POST", f"/api/moderation/targets/{target['id']}/approve", api.admin)
        job = api.until(lambda: api.target(target)["postJob"], lambda job: job["status"] == "needs_review")
        [post] = sandbox.get(f"/sandbox/channels/{channel['handle'].lstrip('@')}/posts").json()
    finally:
        sandbox.delete("/sandbox/faults")
        sandbox.close()
    publisher = api.token("publisher")
    api.deposit(publisher, 7_000)
    withdrawal = api.ok("POST", "/api/wallet/withdrawals", publisher, 201, json={
        "amount": 5_000, "destination": "IBAN DE00 1234"}, headers={"Idempotency-Key": uuid.uuid4().hex})

    sign_in(page, api.admin[1])
    page.get_by_role("link", name="Needs an operator").click()
    job_item = page.locator("#jobs-list li.item", has_text=job["id"])
    expect(job_item).to_contain_text("outcome of the Bot API call unknown")  # what the worker saw
    w_item = page.locator("#withdrawals-list li.item", has_text=withdrawal["id"])
    expect(w_item).to_contain_text("IBAN DE00 1234")
    shot(page, "operator")

    job_item.get_by_role("button", name="Mark published").click()
    expect(job_item.locator(".result")).to_contain_text("Fill in “Message link” first")
    job_item.get_by_label("Message link").fill(f"https://t.me/{channel['handle'].lstrip('@')}/{post['message_id']}")
    job_item.get_by_role("button", name="Mark published").click()
    expect(job_item.locator(".result")).to_contain_text("Resolved: the job is published")
    assert api.target(target)["postJob"]["status"] in ("published", "verified")

    w_item.get_by_label("Payment reference").fill("bank-tx-42")
    w_item.get_by_role("button", name="Complete").dblclick()
    expect(w_item.locator(".result")).to_contain_text("Withdrawal paid")
    paid = api.ok("GET", "/api/withdrawals", api.admin, params={"status": "paid", "limit": 200})
    assert [(w["id"], w["externalReference"]) for w in paid["items"] if w["id"] == withdrawal["id"]] == [
        (withdrawal["id"], "bank-tx-42")]


def test_a_channel_whose_owner_lost_the_chat_is_listed_as_suspended_for_the_operator(page, api, stack):
    channel = api.channel("Lost cats")
    owner = api.owners[channel["handle"]]
    with httpx.Client(base_url=stack.sandbox_url, timeout=10.0, headers=stack.sandbox_headers()) as sandbox:
        sandbox.put(f"/sandbox/channels/{channel['handle'].lstrip('@')}/members/{owner['id']}",
                    json={"status": "member"}).raise_for_status()  # no longer an administrator
    _, target = api.submitted(channel=channel, media=None,
                              at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.5))
    api.ok("POST", f"/api/moderation/targets/{target['id']}/approve", api.admin)
    failed = api.until(lambda: api.target(target), lambda t: t["status"] == "failed")
    assert failed["postJob"]["failureReason"].startswith("channel_ownership_lost")

    sign_in(page, api.admin[1])
    page.get_by_role("link", name="Needs an operator").click()
    item = page.locator("#suspended-list li.item", has_text=channel["handle"])
    expect(item).to_contain_text("Lost cats")
    expect(item).to_contain_text("channel_ownership_lost")


# ---- a stack whose approves outlast the gateway's wait, and whose outbox gives up fast

@pytest.fixture(scope="module")
def slow_stack(browser):
    # Dead-lettered after ~2.5 s of failed deliveries; a retried message has
    # as long again, more than the services' reconnect backoff (at most 2 s).
    with run_stack(MODERATION_APPROVE_WAIT_MS="1", OUTBOX_MAX_ATTEMPTS="5", OUTBOX_BACKOFF_BASE_MS="200",
                   OUTBOX_BACKOFF_CAP_MS="1000", OUTBOX_POLL_MS="100") as stack:
        yield stack


def pid_of(stack, name: str) -> int:
    pids = re.findall(rf"\[supervisor\] started {name} \(pid (\d+)\)", stack.log.read_text())
    assert pids, stack.log_tail()
    return int(pids[-1])


def kill_payments(stack) -> dict[str, str]:
    """SIGKILLs the stack's payments process; returns its environment (read
    from /proc) to start it again as the supervisor did."""
    pid = pid_of(stack, "payments")
    environ = pathlib.Path(f"/proc/{pid}/environ").read_bytes().decode()
    os.kill(pid, signal.SIGKILL)
    return dict(item.split("=", 1) for item in environ.split("\0") if "=" in item)


def start_payments(stack, env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "services.payments.main"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + WAIT_S
    while httpx.get(f"{stack.base_url}/api/health/ready").status_code != 200:
        assert time.monotonic() < deadline and process.poll() is None, "payments did not come back"
        time.sleep(0.1)
    time.sleep(RECONNECT_S)  # campaigns' channel to payments, in its reconnect backoff
    return process


def test_a_slow_approve_is_followed_to_its_end_and_a_dead_letter_is_retried(slow_page, slow_stack):
    page, api = slow_page, Api(slow_stack)
    payments = None
    try:
        advertiser, target = api.submitted(campaign="Slow approve")
        sign_in(page, api.admin[1])
        item = queue_item(page, target)
        item.get_by_role("button", name="Approve").click()
        expect(item.locator(".result")).to_contain_text("Approved: post job", timeout=WAIT_S * 1000)
        assert page.evaluate("window.performance.getEntriesByType('resource')"
                             ".filter(e => e.name.endsWith('/targets/" + target["id"] + "')).length") >= 1
        assert api.target(target)["status"] == "approved"
        # A reject that outlasts the wait (503) is followed to its end too.
        _, other = api.submitted(campaign="Slow reject")
        page.get_by_role("button", name="Refresh").click()
        second = queue_item(page, other)
        second.get_by_label("Reason for rejecting").fill("Off-topic")
        second.get_by_role("button", name="Reject").click()
        expect(second.locator(".result")).to_contain_text("Rejected: “Off-topic”", timeout=WAIT_S * 1000)
        assert api.target(other)["status"] == "rejected"

        # A refund that cannot reach payments is dead-lettered; once payments is back, a retry delivers it.
        env = kill_payments(slow_stack)
        api.ok("POST", f"/api/campaigns/{target['campaignId']}/targets/{target['id']}/cancel", advertiser)
        api.until(lambda: api.ok("GET", "/api/outbox/dead-letters", api.admin, params={"service": "campaigns"}),
                  lambda page_: any(m["aggregateId"] == target["id"] for m in page_["items"]))
        payments = start_payments(slow_stack, env)
        page.get_by_role("link", name="Needs an operator").click()
        dead = page.locator("#dead-list li.item", has_text=target["id"])
        expect(dead).to_contain_text("escrow.refund")
        shot(page, "dead-letters")
        dead.get_by_role("button", name="Retry").click()
        expect(dead.locator(".result")).to_contain_text("is pending again")
        escrow = api.until(lambda: api.ok("GET", f"/api/escrows/{target['id']}", api.admin),
                           lambda escrow: escrow["status"] == "refunded")
        assert escrow["amount"] == PRICE
    finally:
        api.http.close()
        if payments is not None:  # the supervisor stops only what it started
            payments.terminate()
            payments.wait(10)


# ---- the routes the console reads through, over HTTP -----------------------------

def test_a_targets_decisions_are_listed_newest_first_a_page_at_a_time(api):
    advertiser, target = api.submitted(campaign="History")
    path = f"/api/moderation/targets/{target['id']}/decisions"
    assert api.ok("GET", path, api.admin) == {"items": [], "nextCursor": None}
    api.ok("POST", f"/api/moderation/targets/{target['id']}/reject", api.admin, json={"reason": "Too loud"})
    api.ok("POST", f"/api/campaigns/{target['campaignId']}/targets/{target['id']}/submit", advertiser)
    approved = api.ok("POST", f"/api/moderation/targets/{target['id']}/approve", api.admin)

    first = api.ok("GET", path, api.admin, params={"limit": 1})
    [newest] = first["items"]
    assert (newest["decision"], newest["status"], newest["postJobId"]) == ("approve", "approved", approved["postJobId"])
    assert newest["moderatorId"] == api.admin[0] and newest["decidedAt"].endswith("Z")
    second = api.ok("GET", path, api.admin, params={"limit": 1, "cursor": first["nextCursor"]})
    assert [(d["decision"], d["status"], d["reason"]) for d in second["items"]] == [("reject", "rejected", "Too loud")]
    assert second["nextCursor"] is None
    assert api.ok("GET", path, api.admin, params={"limit": 50})["items"] == [newest, *second["items"]]
    refused = api.http.get(path, headers={"Authorization": f"Bearer {api.token('advertiser')[1]}"})
    assert refused.status_code == 403


def test_dead_letter_routes_refuse_what_they_cannot_act_on(api):
    listed = api.ok("GET", "/api/outbox/dead-letters", api.admin)
    assert set(listed) == {"items", "nextCursor"}
    admin = {"Authorization": f"Bearer {api.admin[1]}"}
    unknown = api.http.post("/api/outbox/campaigns/dead-letters/9223372036854775806/retry", headers=admin)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    for bad in ("/api/outbox/payments/dead-letters/1/retry", "/api/outbox/campaigns/dead-letters/0/retry"):
        assert api.http.post(bad, headers=admin).status_code == 400
    assert api.http.get("/api/outbox/dead-letters", params={"service": "payments"}, headers=admin).status_code == 400
    assert api.http.get("/api/outbox/dead-letters", params={"cursor": "bm9wZQ"}, headers=admin).status_code == 400
    publisher = {"Authorization": f"Bearer {api.token('publisher')[1]}"}
    assert api.http.get("/api/outbox/dead-letters", headers=publisher).status_code == 403
