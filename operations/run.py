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


def cmd_run(args, settings: CliSettings) -> int:
    from operations.supervisor import BusyPort, run_stack

    overrides = {f"{c}_port": getattr(args, f"{c}_port") for c in (*CONTEXTS, "gateway")}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    try:
        return run_stack(settings)
    except BusyPort as error:
        sys.exit(f"cannot start: {error}")
