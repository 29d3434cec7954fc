"""The HTTP gateway of API.md: translate, call the service, map. One
long-lived gRPC channel per service for the life of the app."""
import contextlib
import functools

from fastapi import FastAPI

from common.clients import open_channel
from gateway.deps import Services
from gateway.console import install_console
from gateway.cors import Cors
from gateway.docs import install_docs
from gateway.errors import install_error_handlers
from gateway.limits import RequestLimits
from gateway.middleware import RequestContext
from gateway.openapi import openapi_document, operation_id
from gateway.routes import (campaigns, channels, health, moderation, outbox, payments, publication, targets,
                            telegram)
from gateway.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """The app, configured by `settings`; the JWT secret is resolved now so a
    bad one stops the process before it serves."""
    jwt_secret = settings.jwt_secret()
    internal_token = settings.internal_token()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        channels_by_service = {
            name: open_channel(address, internal_token, settings.grpc_deadline_ms)
            for name, address in (("campaigns", settings.campaigns_addr), ("moderation", settings.moderation_addr),
                                  ("payments", settings.payments_addr))}
        app.state.services = Services(channels_by_service)
        try:
            yield
        finally:
            for channel in channels_by_service.values():
                await channel.close()

    app = FastAPI(title="AdTech gateway", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None, openapi_url="/api/openapi.json",
                  generate_unique_id_function=operation_id,
                  description="HTTP/JSON API of the ad marketplace: Telegram accounts, channels, campaigns, "
                              "targets, moderation, publication and payments. Bearer JWT (HS256) on every "
                              "route but health. "
                              "Every error answers `{\"error\": {\"code\", \"message\"}}`; each "
                              "operation lists the statuses and codes it can answer.")
    app.state.settings = settings
    app.state.jwt_secret = jwt_secret
    for module in (health, telegram, channels, campaigns, targets, moderation, payments, publication, outbox):
        app.include_router(module.router)
    install_docs(app, "/api/docs")
    install_console(app)
    install_error_handlers(app)
    app.openapi = functools.partial(openapi_document, app)
    app.openapi()
    # The last added is the outermost: every answer, a refusal of a limit
    # included, gets its request id, its headers and its log line.
    app.add_middleware(RequestLimits, max_body_bytes=settings.gateway_max_body_bytes)
    # Outside the limits: a page on an allowed origin can read a 413 too.
    app.add_middleware(Cors, origins=settings.cors_origins())
    app.add_middleware(RequestContext)
    return app
