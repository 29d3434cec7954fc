"""A small client of API.md for the end-to-end suite: users with minted JWTs,
calls that check the status code, the business steps of the seed's flow, and
the checks every refusal shares ("the error body is exact", "nothing was
left behind"). Everything goes over HTTP; nothing here knows the services."""
import asyncio
import dataclasses
import datetime as dt
import re
import time
import uuid

import httpx
import jwt

from tests.harness import free_slot

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
SETTLED = {"approved", "failed", "rejected"}


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def from_now(**delta) -> str:
    return iso(dt.datetime.now(dt.timezone.utc) + dt.timedelta(**delta))


def handle() -> str:
    return f"@e2e_{uuid.uuid4().hex[:12]}"


def mint(secret: str, role: str, sub: str | None = None, ttl: int = 3600, **extra) -> str:
    now = int(time.time())
    claims = {"sub": sub or str(uuid.uuid4()), "role": role, "iat": now, "exp": now + ttl, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclasses.dataclass(frozen=True)
class User:
    id: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def assert_error(response: httpx.Response, status: int, message: str | None = None, code: str | None = None) -> dict:
    """The status, and the body exactly {"error": {"code": snake_case, "message": text}}."""
    assert response.status_code == status, f"{_describe(response)}: expected {status}"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, f"{_describe(response)}: not the error shape"
    assert SNAKE_CASE.match(body["error"]["code"]), f"{_describe(response)}: code not snake_case"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if message is not None:
        assert body["error"]["message"] == message, f"{_describe(response)}: expected message {message!r}"
    if code is not None:
        assert body["error"]["code"] == code, f"{_describe(response)}: expected code {code!r}"
    return body["error"]


def _describe(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path} -> {response.status_code} {response.text[:300]}"


@dataclasses.dataclass
class Flow:
    """One advertiser's campaign with a target on a publisher's approved channel."""
    advertiser: User
    publisher: User
    channel: dict
    campaign: dict
    target: dict

    @property
    def target_id(self) -> str:
        return self.target["id"]

    @property
    def target_path(self) -> str:
        return f"/api/campaigns/{self.campaign['id']}/targets/{self.target['id']}"


class Api:
    """The gateway at `base_url`, as any user we mint a token for."""

    def __init__(self, http: httpx.AsyncClient, secret: str, min_lead_ms: int, sandbox=None):
        self.http, self.secret, self.min_lead_ms = http, secret, min_lead_ms
        self.sandbox = sandbox  # the stack's Bot API sandbox (sandbox.testing.SandboxControl): Telegram
        self.telegram: dict[str, dict] = {}  # user id -> the Telegram user bound to it
        self.admin = self.user("admin")
        self.advertisers: list[User] = []  # every wallet the suite touched, for the invariants of E.4
        self.approved: dict[str, dict] = {}  # target id -> approve result, for E.4

    def user(self, role: str) -> User:
        sub = str(uuid.uuid4())
        user = User(sub, role, mint(self.secret, role, sub))
        if role == "advertiser":
            self.advertisers.append(user)
        return user

    async def call(self, method: str, path: str, user: User | None = None, *, expect: int | None = None,
                   **kwargs) -> httpx.Response:
        headers = {**(user.headers if user else {}), **kwargs.pop("headers", {})}
        response = await self.http.request(method, path, headers=headers, **kwargs)
        if expect is not None:
            assert response.status_code == expect, f"{_describe(response)}: expected {expect}"
        return response

    async def ok(self, method: str, path: str, user: User | None, expect: int = 200, **kwargs) -> dict:
        return (await self.call(method, path, user, expect=expect, **kwargs)).json()

    # ---- the seed's flow, one step per method ---------------------------------

    async def link_telegram(self, user: User, timeout: float = 15.0) -> dict:
        """The user's Telegram account, bound as a person binds it: a link
        from the API, Start pressed in the bot (the sandbox delivers
        `/start <code>` to the stack's bot), until the API says linked."""
        if user.id in self.telegram:
            return self.telegram[user.id]
        assert self.sandbox is not None, "this stack's Bot API sandbox is unknown (E2E_SANDBOX_URL)"
        account = await self.sandbox.create_user()
        link = await self.ok("POST", "/api/me/telegram/link", user, 201)
        await self.sandbox.send_message(account["id"], f"/start {link['code']}")
        deadline = time.monotonic() + timeout
        while not (await self.ok("GET", "/api/me/telegram", user))["linked"]:
            assert time.monotonic() < deadline, f"the bot did not link {user.id} within {timeout}s"
            await asyncio.sleep(0.05)
        self.telegram[user.id] = account
        return account

    async def own_channel(self, publisher: User, name: str, status: str = "creator") -> dict:
        """The publisher's Telegram account made the chat's creator (or
        `status`), as its real owner would be."""
        account = await self.link_telegram(publisher)
        await self.sandbox.set_member(name, account["id"], status)
        return account

    async def approved_channel(self, price: int = 1_000, publisher: User | None = None, *,
                               auto_accept: bool = True) -> tuple[User, dict]:
        """A channel its publisher owns in Telegram, listed and approved;
        by default it auto-accepts (an approve queues its post at once)."""
        publisher = publisher or self.user("publisher")
        name = handle()
        await self.own_channel(publisher, name)
        channel = await self.ok("POST", "/api/channels", publisher, 201,
                                json={"title": "Daily news", "handle": name, "pricePerPost": price,
                                      "autoAccept": auto_accept})
        channel = await self.ok("POST", f"/api/channels/{channel['id']}/approve", self.admin)
        return publisher, channel

    async def open_wallet(self, user: User) -> dict:
        """The owner's first look at the wallet opens it; deposits may then reach it."""
        return await self.ok("GET", "/api/wallet", user)

    async def deposit(self, user: User, amount: int, key: str | None = None) -> dict:
        await self.open_wallet(user)
        return await self.ok("POST", f"/api/wallets/{user.id}/deposits", self.admin, 201, json={"amount": amount},
                             headers={"Idempotency-Key": key or uuid.uuid4().hex})

    async def wallet(self, user: User) -> dict:
        return await self.ok("GET", f"/api/wallets/{user.id}", self.admin)

    async def campaign(self, advertiser: User, *, creatives: bool = True, activate: bool = True, **fields) -> dict:
        body = {"name": "Winter sale", **fields}
        if creatives:
            body["creatives"] = [{"text": "Buy now"}]
        campaign = await self.ok("POST", "/api/campaigns", advertiser, 201, json=body)
        if activate:
            campaign = await self.ok("POST", f"/api/campaigns/{campaign['id']}/activate", advertiser)
        return campaign

    async def add_target(self, advertiser: User, campaign: dict, channel: dict, scheduled_at: str | None = None) -> dict:
        return await self.ok("POST", f"/api/campaigns/{campaign['id']}/targets", advertiser, 201,
                             json={"channelId": channel["id"], "scheduledAt": scheduled_at or iso(free_slot())})

    async def submit(self, advertiser: User, target: dict) -> dict:
        return await self.ok("POST", f"/api/campaigns/{target['campaignId']}/targets/{target['id']}/submit", advertiser)

    async def flow(self, *, price: int = 1_000, funds: int = 10_000, submitted: bool = True) -> Flow:
        """An advertiser with `funds`, an active campaign and a (submitted) target."""
        advertiser = self.user("advertiser")
        publisher, channel = await self.approved_channel(price)
        if funds:
            await self.deposit(advertiser, funds)
        campaign = await self.campaign(advertiser)
        target = await self.add_target(advertiser, campaign, channel)
        if submitted:
            target = await self.submit(advertiser, target)
        return Flow(advertiser, publisher, channel, campaign, target)

    async def get_target(self, flow_or_target) -> dict:
        target = flow_or_target.target if isinstance(flow_or_target, Flow) else flow_or_target
        return await self.ok("GET", f"/api/campaigns/{target['campaignId']}/targets/{target['id']}", self.admin)

    async def approve(self, target_id: str, user: User | None = None) -> httpx.Response:
        response = await self.call("POST", f"/api/moderation/targets/{target_id}/approve", user or self.admin)
        if response.status_code == 200:
            self.approved[target_id] = response.json()
        return response

    async def decision(self, target_id: str) -> httpx.Response:
        return await self.call("GET", f"/api/moderation/targets/{target_id}", self.admin)

    async def settle(self, target_id: str, timeout: float = 20.0) -> dict:
        """The decision once its saga has ended (after a 202)."""
        deadline = time.monotonic() + timeout
        while True:
            response = await self.decision(target_id)
            if response.status_code == 200 and response.json()["status"] in SETTLED:
                decision = response.json()
                if decision["status"] == "approved":
                    self.approved[target_id] = {"targetId": target_id, "postJobId": decision["postJobId"],
                                                "escrowId": decision["escrowId"]}
                return decision
            assert time.monotonic() < deadline, f"decision of {target_id} not settled: {response.text}"
            await asyncio.sleep(0.05)

    async def ledger(self, user: User) -> list[dict]:
        """Every entry of the user's own ledger, newest first, through every page."""
        entries, cursor = [], None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = await self.ok("GET", "/api/wallet/ledger", user, params=params)
            entries += page["items"]
            cursor = page["nextCursor"]
            if not cursor:
                return entries

    # ---- what every refusal must leave behind: nothing --------------------------

    async def assert_nothing_held(self, flow: Flow, wallet_before: dict | None) -> None:
        """No escrow for the target, no post job on it, the wallet unchanged."""
        escrow = await self.call("GET", f"/api/escrows/{flow.target_id}", self.admin)
        assert_error(escrow, 404)
        assert (await self.get_target(flow))["postJob"] is None
        if wallet_before is not None:
            assert await self.wallet(flow.advertiser) == wallet_before
