"""The push receiver's FastAPI app factory (plugin, ``uvicorn --factory`` and ``python -m``).

Creating the app reads environment variables and nothing else: no file, no
database, no thread.  Without a usable configuration it still starts (Airflow
must not fail to serve its UI because of us) and answers pushes 503, which
makes the gateway retry instead of dropping them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from every8d.callbacks.deps import STATE_KEY
from every8d.callbacks.params import PushRejected
from every8d.callbacks.receiver import PushReceiver
from every8d.callbacks.redact import RedactQueryForLogs
from every8d.callbacks.router import json_response, router
from every8d.callbacks.settings import PushSettings, SettingsError

log = logging.getLogger(__name__)


async def _rejected(request: Request, error: PushRejected):
    headers = {"Retry-After": "5"} if error.status_code == 503 else None
    return json_response(error.body(), error.status_code, headers)


async def _http_error(request: Request, error: StarletteHTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return json_response({"error": code, "detail": str(error.detail)}, error.status_code)


async def _invalid(request: Request, error: RequestValidationError):
    return json_response({"error": "invalid_request", "detail": "the request is not a valid push"}, 422)


def create_app(settings: PushSettings | None = None, *, prefix: str = "") -> FastAPI:
    """The receiver app; ``settings`` default to the environment (see :mod:`every8d.callbacks.settings`).

    :param prefix: path prefix of the routes ("" when a host mounts the app under its own prefix).
    """
    config_error = None
    if settings is None:
        try:
            settings = PushSettings.from_env()
        except SettingsError as error:
            config_error = str(error)
            log.warning("EVERY8D push receiver is not configured, pushes will get 503: %s", config_error)
    receiver = PushReceiver(settings, config_error)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await receiver.aclose()  # write what is pending before the process goes

    app = FastAPI(title="EVERY8D pushes", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    setattr(app.state, STATE_KEY, receiver)
    # Starlette types a handler as taking any Exception, though it calls each only with its class.
    app.add_exception_handler(PushRejected, _rejected)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.include_router(router, prefix=prefix.rstrip("/"))
    app.add_middleware(RedactQueryForLogs)
    return app
