"""`adtech verify` (`make verify`): the seed's post-deployment checks across
services, asked through each service's own API as the system actor (the
checks themselves are services.verify.verify). Prints a table; exits 1 on any
violation."""
import asyncio
import sys

from operations.settings import CONTEXTS

SHOWN_OFFENDERS = 3  # per check; the count says how many there are in all


def register(subparsers) -> None:
    p = subparsers.add_parser("verify", help="cross-service invariants (escrows, post jobs, ledger, outboxes); exit 1 on a violation")
    p.add_argument("--max-outbox-age", type=float, default=60.0, metavar="SECONDS",
                   help="oldest pending outbox message allowed (default 60)")
    p.set_defaults(func=cmd_verify)


async def run_checks(settings, max_outbox_age_s: float) -> list:
    """Every check against the services where `adtech run` starts them; one
    that does not answer ends the command with one line (operations.peers)."""
    from adtech.campaigns.v1 import campaigns_pb2_grpc
    from adtech.moderation.v1 import moderation_pb2_grpc
    from adtech.ops.v1 import ops_pb2_grpc
    from adtech.payments.v1 import payments_pb2_grpc
    from operations.peers import PeerChannel
    from services.verify import verify

    channels = {ctx: PeerChannel(settings, ctx) for ctx in CONTEXTS}
    try:
        return await verify(
            campaigns_pb2_grpc.CampaignsServiceStub(channels["campaigns"]),
            payments_pb2_grpc.PaymentsServiceStub(channels["payments"]),
            moderation_pb2_grpc.ModerationServiceStub(channels["moderation"]),
            {ctx: ops_pb2_grpc.OpsServiceStub(channels[ctx]) for ctx in ("campaigns", "moderation")},
            max_outbox_age_s=max_outbox_age_s)
    finally:
        for channel in channels.values():
            await channel.close()


def report(checks) -> tuple[str, bool]:
    """The table (check, ok, violations, first offenders) and whether all passed."""
    from operations.ops import _table

    rows = [[c.name, "yes" if c.ok else "NO", len(c.violations),
             "; ".join(c.violations[:SHOWN_OFFENDERS]) + (" …" if len(c.violations) > SHOWN_OFFENDERS else "")]
            for c in checks]
    return _table(["check", "ok", "violations", "first offenders"], rows), bool(checks) and all(c.ok for c in checks)


def cmd_verify(args, settings) -> int:
    checks = asyncio.run(run_checks(settings, args.max_outbox_age))
    table, ok = report(checks)
    print(table)
    failed = sum(1 for c in checks if not c.ok)
    print("all checks passed" if ok else f"{failed} check(s) FAILED", file=sys.stderr)
    return 0 if ok else 1
