"""`adtech`: the operator's command line, and the process supervisor behind
`adtech run`. An entry point: it depends on the services, the gateway and
common, and nothing depends on it.

    adtech run                       the whole stack on this machine (`make run`)
    adtech migrate [--context X]     create the databases and apply migrations
    adtech token --role admin        mint a JWT the gateway accepts
    adtech outbox list|stats|retry   inspect and requeue outbox messages
    adtech payments reconcile        check the ledger's invariants
    adtech health --grpc ADDR        exit 0 when a service answers SERVING
    adtech settings-table            the README's table of settings
    adtech test-compose              the e2e suite against `docker compose up`
    adtech verify                    cross-service invariants

This module wires the subcommands to their modules (one per concern) and
turns their failures into exit codes."""
import argparse
import pathlib
import sys

from common.settings import ConfigError, load_settings
from operations import verify
from operations.compose import cmd_test_compose
from operations.database import cmd_migrate
from operations.docs import cmd_settings_table
from operations.ops import cmd_health, cmd_outbox, cmd_reconcile
from operations.run import _port, _replicas, cmd_run
from operations.settings import CONTEXTS, OUTBOX_CONTEXTS, ROLES, CliSettings, CommandFailed
from operations.tokens import _ttl, _uuid, cmd_token

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
    p.add_argument("--replicas", type=_replicas, help="processes of each service (default: ADTECH_REPLICAS, 1)")
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
    p.add_argument("--dry-run", action="store_true", help="print what it would do on this machine instead of doing it")
    p.add_argument("--check", action="store_true", help="exit 0 when it can run on this machine, else 1 with the reason")
    p.set_defaults(func=cmd_test_compose)

    verify.register(sub)
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
