"""Airflow plugin entry point of the provider (``airflow.plugins``).

It makes Airflow load this package when the api-server, scheduler and workers
start, and registers the inbound status/reply push receiver as a FastAPI app
under ``/every8d`` of ``airflow api-server``.  Every Airflow process imports
this module, but only the api-server reads ``fastapi_apps``: the app (and
FastAPI itself) is built on that first read, not at import.  The campaign
pages (``/every8d-ui``, :mod:`every8d.ui.app`) sit behind Airflow's own auth
and appear as an EVERY8D nav entry and a Campaign tab on DAG runs.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

PUSH_URL_PREFIX = "/every8d"


class _PushApps:
    """``fastapi_apps`` built on first access, once per process (cheap imports for workers)."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def __get__(self, instance: object, owner: type | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if self._apps is None:
                from every8d.ui.app import UI_URL_PREFIX, create_ui_app

                self._apps = [
                    {"app": _create_push_app(), "url_prefix": PUSH_URL_PREFIX, "name": "EVERY8D pushes"},
                    {"app": create_ui_app(), "url_prefix": UI_URL_PREFIX, "name": "EVERY8D campaigns"},
                ]
            return self._apps


def _create_push_app():
    from every8d.callbacks.app import create_app

    app = create_app()  # unconfigured is fine: pushes then get 503 and the gateway retries
    receiver_settings = app.state.every8d_push_receiver.settings
    if receiver_settings is not None:
        from airflow.sdk.log import mask_secret

        for token in receiver_settings.tokens:  # in case a URL with it reaches a log
            mask_secret(token)
    return app


class Every8dPlugin(AirflowPlugin):
    """EVERY8D provider plugin: the push receiver at ``/every8d/push`` and the campaign pages."""

    name = "every8d"
    fastapi_apps = _PushApps()
    # Plain data, cheap for every process that imports the plugin.  AirflowPlugin declares it a plain
    # attribute (not a ClassVar), so it is overridden as one.
    external_views: list[dict[str, Any]] = [  # noqa: RUF012
        {
            "name": "EVERY8D",
            "href": "/every8d-ui/",
            "destination": "nav",
            "url_route": "every8d",
            "category": "browse",
        },
        {
            "name": "Campaign",
            "href": "/every8d-ui/campaign/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "every8d-campaign",
        },
    ]
