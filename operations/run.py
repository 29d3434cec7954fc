"""`adtech run`: the whole stack on this machine (the work is in operations.supervisor)."""
import argparse
import sys

from operations.settings import CONTEXTS, CliSettings


def _port(value: str) -> int:
    """A real port: peers are told it, so 0 (any free port) cannot work."""
    port = int(value)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError("must be between 1 and 65535")
    return port


def _replicas(value: str) -> int:
    replicas = int(value)
    if not 1 <= replicas <= 8:
        raise argparse.ArgumentTypeError("must be between 1 and 8")
    return replicas


def cmd_run(args, settings: CliSettings) -> int:
    from operations.installation import AlreadyRunning
    from operations.supervisor import BusyPort, run_stack

    given = {name: port for name in (*CONTEXTS, "gateway") if (port := getattr(args, f"{name}_port")) is not None}
    settings = settings.model_copy(update={f"{name}_port": port for name, port in given.items()})
    if args.replicas is not None:
        settings = settings.model_copy(update={"adtech_replicas": args.replicas})
    try:
        return run_stack(settings, port_flags=given.keys())
    except (AlreadyRunning, BusyPort) as error:
        sys.exit("\n".join(f"cannot start: {line}" for line in str(error).splitlines()))
