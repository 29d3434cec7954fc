"""The composition steps every service's `main` shares: settings, logging,
its database, peer channels, the gRPC server, background workers, and a
graceful stop on SIGTERM."""
import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from common.clients import CallerChannel, open_channel
from common.db import Database, database_url_for, ensure_database, server_url
from common.grpc_server import PortInUse, Registration, ServiceServer, install_uvloop, run_until_signalled
from common.logs import configure_logging
from common.settings import CommonSettings, ConfigError, fail_fast, load_settings

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Assembly:
    """What a service's composition root hands to the runner."""
    registrations: list[Registration]
    workers: list[Callable[[], Awaitable[None]]] = dataclasses.field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = dataclasses.field(default_factory=list)


async def open_database(settings: CommonSettings, database: str, *, pool_size: int = 10) -> Database:
    server = await asyncio.to_thread(server_url, settings.database_url, settings.data_dir())
    await ensure_database(server, database)
    return Database(database_url_for(server, database), pool_size=pool_size)


def peer(settings: CommonSettings, address: str) -> CallerChannel:
    return open_channel(address, settings.internal_token(), settings.grpc_deadline_ms)


class RunningService:
    """A started service: server, workers and what to close, in stop order."""

    def __init__(self, name: str, server: ServiceServer, assembly: Assembly):
        self.name, self.server, self.assembly = name, server, assembly
        self.tasks: list[asyncio.Task] = []
        self.port: int | None = None

    async def start(self, address: str) -> int:
        self.port = await self.server.start(address)
        self.tasks = [asyncio.create_task(worker(), name=f"{self.name}-worker") for worker in self.assembly.workers]
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        """Drains calls for `grace`, then workers and closers; each stage is
        bounded, so a stuck peer or worker cannot keep the process alive."""
        await _bounded(self.server.stop(grace), grace + 2, "grpc server stop")
        for task in self.tasks:
            task.cancel()
        await _bounded(asyncio.gather(*self.tasks, return_exceptions=True), grace + 5, "workers stop")
        for close in self.assembly.closers:
            await _bounded(close(), grace + 5, "close")


async def _bounded(awaitable, seconds: float, what: str) -> None:
    try:
        await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        log.error("%s did not finish within %.1fs; going on", what, seconds)


async def start_service(name: str, settings: CommonSettings, assembly: Assembly, address: str) -> RunningService:
    running = RunningService(name, ServiceServer(settings.internal_token(), assembly.registrations), assembly)
    await running.start(address)
    return running


def run_process(name: str, settings_cls: type[CommonSettings],
                start: Callable[[CommonSettings], Awaitable[Callable[[], Awaitable[None]]]]) -> None:
    """Entry point of a long-running process: its settings (or one line on
    a bad one), logging, the event loop; `start(settings)` starts the work
    and returns how to stop it, called on SIGTERM or SIGINT."""
    settings = load_settings(settings_cls)
    configure_logging(name, settings.log_level)
    install_uvloop()

    async def main() -> None:
        stops: list[Callable[[], Awaitable[None]]] = []

        async def begin() -> None:
            stops.append(await start(settings))

        async def end() -> None:
            log.info("stopping")
            await stops[0]()

        await run_until_signalled(begin, end)

    try:
        asyncio.run(main())
    except (ConfigError, PortInUse) as error:
        fail_fast(str(error))


def run_service(name: str, settings_cls: type[CommonSettings], port_of: Callable[[CommonSettings], int],
                assemble: Callable[[CommonSettings], Awaitable[Assembly]]) -> None:
    """Entry point of a service process."""
    async def start(settings: CommonSettings):
        running = await start_service(name, settings, await assemble(settings),
                                      f"{settings.grpc_host}:{port_of(settings)}")
        log.info("serving", extra={"fields": {"port": running.port}})
        return running.stop

    run_process(name, settings_cls, start)
