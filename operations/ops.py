"""`adtech outbox`, `adtech payments reconcile` and `adtech health`: asking
running services how they are. Outbox and reconcile call the services' gRPC
APIs as the system actor with the internal credential, where `adtech run`
starts them (operations.peers)."""
import asyncio
import sys

from operations.settings import OUTBOX_CONTEXTS, CliSettings, CommandFailed


async def _call(settings: CliSettings, context: str, stub_cls, method: str, request):
    from common.auth import SYSTEM, acting_as
    from operations.peers import PeerChannel

    async with PeerChannel(settings, context) as channel:
        with acting_as(SYSTEM):
            return await getattr(stub_cls(channel), method)(request)


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
