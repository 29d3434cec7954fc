"""/api/docs: Swagger UI over the served document, with its files served by
the gateway itself (they come with the fastapi-offline package), so the page
works on a machine without internet."""
import importlib.resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/api/docs/assets"
SWAGGER_UI_FILES = importlib.resources.files("fastapi_offline") / "static"


def install_docs(app: FastAPI, docs_url: str) -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=str(SWAGGER_UI_FILES)), name="docs_assets")

    @app.get(docs_url, include_in_schema=False)
    async def docs() -> HTMLResponse:
        # validatorUrl null: Swagger UI would otherwise send the document to
        # its public validator and show the verdict as a badge.
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png", swagger_ui_parameters={"validatorUrl": None})
