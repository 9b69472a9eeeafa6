"""The EVERY8D client, without Airflow: a typed :class:`Every8dClient` over a transport that owns the wire.

``Every8dHttpClient`` speaks HTTP API 2.1 (:mod:`every8d.client.v21`); a newer
API would add its own version package and a transport option, and nothing that
depends on :class:`Every8dClient` would change.  Build one with :func:`connect`,
or from an Airflow connection with ``Every8dHook(...).get_client()``.
"""

from __future__ import annotations

from every8d.client.protocol import Every8dClient
from every8d.client.results import (
    DeliveryStatus,
    EraseResult,
    ParamRecipient,
    Reply,
    ReplyPage,
    SendResult,
    StatusPage,
)
from every8d.client.settings import ClientSettings, Credentials, normalize_base_url
from every8d.client.v21.client import Every8dHttpClient


def connect(base_url: str, uid: str, pwd: str, **settings: object) -> Every8dHttpClient:
    """A client for the gateway at ``base_url`` (``api.e8d.tw``, ``http://127.0.0.1:8765/tenant``, ...).

    :param settings: any other :class:`ClientSettings` field (``read_timeout``, ``deadline``, ...).
    """
    return Every8dHttpClient(
        ClientSettings(base_url=normalize_base_url(base_url), **settings),  # type: ignore[arg-type]
        Credentials(uid, pwd),
    )


__all__ = [
    "ClientSettings",
    "Credentials",
    "DeliveryStatus",
    "EraseResult",
    "Every8dClient",
    "Every8dHttpClient",
    "ParamRecipient",
    "Reply",
    "ReplyPage",
    "SendResult",
    "StatusPage",
    "connect",
    "normalize_base_url",
]
