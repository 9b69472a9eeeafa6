"""``Every8dHook``: an Airflow Connection turned into an :class:`~every8d.client.Every8dClient`.

The client (:mod:`every8d.client`, no Airflow inside) owns the wire: sessions,
credentials, deadlines, retries, error classification and parsing.  The hook
only reads the Connection and its extras, masks the password in task logs,
builds one client and keeps it, answers the UI's Test button, and passes its
public calls (``send_sms``, ``iter_delivery_status``, ...) through to the client.
Code that only needs the gateway should take an ``Every8dClient``
(``hook.get_client()``) rather than the hook.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any, Concatenate, ParamSpec, TypeVar

from airflow.sdk import BaseHook

from every8d.client import ClientSettings, Credentials, Every8dClient, Every8dHttpClient, normalize_base_url
from every8d.client.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DEADLINE,
    DEFAULT_POOL_SIZE,
    DEFAULT_READ_RETRIES,
    DEFAULT_READ_TIMEOUT,
    as_bool_or_path,
    optional_int,
)
from every8d.errors import register_secret
from every8d.hooks import DEFAULT_CONN_NAME

__all__ = ["DEFAULT_BASE_URL", "Every8dHook", "HookSettings", "normalize_base_url"]

#: The hook's resolved settings are the client's (kept under this name for callers of ``hook.settings``).
HookSettings = ClientSettings

P = ParamSpec("P")
R = TypeVar("R")
#: Held while a hook builds its client, so threads sharing a hook share one client (and its pools).
_BUILDING = threading.Lock()


def _delegated(
    method: Callable[Concatenate[Every8dHttpClient, P], R],
) -> Callable[Concatenate[Every8dHook, P], R]:
    """The hook's version of a client call: the same name, signature and docstring, run on the hook's
    client."""
    name = method.__name__

    def call(self: Every8dHook, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return getattr(self.get_client(), name)(*args, **kwargs)

    functools.update_wrapper(call, method)
    return call


class Every8dHook(BaseHook):
    """Talk to the EVERY8D SMS gateway (HTTP API 2.1).

    The connection's host is the base URL, including any enterprise path
    prefix; login is the UID and password the PWD.  Extras: ``timeout`` (read
    seconds), ``connect_timeout``, ``verify`` (TLS verification, or a CA
    bundle path), ``validity_minutes`` (default ``RETRYTIME``), ``read_retries``
    and ``deadline`` (total seconds per call).  Arguments given here override the extras.

    :param every8d_conn_id: the Airflow connection to use.
    :param base_url: override the connection's host.
    :param timeout: read timeout in seconds.
    :param connect_timeout: connect timeout in seconds.
    :param verify: TLS verification (bool) or a CA bundle path.
    :param validity_minutes: default validity window for sends (``RETRYTIME``).
    :param read_retries: automatic retries for read-only calls.
    :param pool_size: HTTP connections kept per session, for concurrent callers.
    :param deadline: seconds a whole call may take, answer included (extra ``deadline``).
    """

    conn_name_attr = "every8d_conn_id"
    default_conn_name = DEFAULT_CONN_NAME
    conn_type = "every8d"
    hook_name = "EVERY8D SMS"

    def __init__(
        self,
        every8d_conn_id: str = default_conn_name,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        verify: bool | str | None = None,
        validity_minutes: int | None = None,
        read_retries: int | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.every8d_conn_id = every8d_conn_id
        self._overrides: dict[str, Any] = {
            "base_url": base_url,
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "verify": verify,
            "validity_minutes": validity_minutes,
            "read_retries": read_retries,
            "deadline": deadline,
        }
        self.pool_size = pool_size

    # -- the client ------------------------------------------------------------------

    @cached_property
    def _client(self) -> Every8dHttpClient:
        from airflow.sdk.log import mask_secret

        conn = self.get_connection(self.every8d_conn_id)
        if conn.password:
            mask_secret(conn.password)
        extras = conn.extra_dejson or {}

        def pick(name: str, extra_key: str, default: Any) -> Any:
            value = self._overrides.get(name)
            if value is not None:
                return value
            extra = extras.get(extra_key)
            return default if extra is None or extra == "" else extra

        register_secret(conn.password)
        host = self._overrides["base_url"] or conn.host
        if not host or not host.strip():
            raise ValueError(
                f"connection {self.every8d_conn_id!r} has no host: set it to the gateway's base URL "
                f"(e.g. {DEFAULT_BASE_URL}, or the sandbox's http://127.0.0.1:<port>); "
                "a connection without one is refused rather than sent to the production gateway"
            )
        settings = ClientSettings(
            base_url=normalize_base_url(
                host, None if self._overrides["base_url"] else conn.port, conn.schema or None
            ),
            read_timeout=float(pick("timeout", "timeout", DEFAULT_READ_TIMEOUT)),
            connect_timeout=float(pick("connect_timeout", "connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
            verify=as_bool_or_path(pick("verify", "verify", True)),
            validity_minutes=optional_int(pick("validity_minutes", "validity_minutes", None)),
            read_retries=int(pick("read_retries", "read_retries", DEFAULT_READ_RETRIES)),
            deadline=float(pick("deadline", "deadline", DEFAULT_DEADLINE)),
            pool_size=self.pool_size,
        )
        if not conn.login or not conn.password:
            raise ValueError(f"connection {self.every8d_conn_id!r} needs a login (UID) and a password (PWD)")
        return Every8dHttpClient(settings, Credentials(conn.login, conn.password))

    def get_client(self) -> Every8dClient:
        """The connection's client, built on first use and kept (its pooled sessions with it)."""
        return self._http_client()

    def _http_client(self) -> Every8dHttpClient:
        if "_client" not in self.__dict__:
            with _BUILDING:
                return self._client
        return self._client

    def get_conn(self) -> Every8dClient:
        """The client (``BaseHook`` convention)."""
        return self.get_client()

    @property
    def settings(self) -> ClientSettings:
        """Resolved settings (base URL, timeouts, ...): never the credentials."""
        return self._http_client().settings

    def close(self) -> None:
        """Close the client's pooled connections (a later call opens new ones)."""
        client = self.__dict__.get("_client")
        if client is not None:
            client.close()

    # -- the client's calls, for DAG authors who hold a hook --------------------------------

    send_sms = _delegated(Every8dHttpClient.send_sms)
    send_sms_filtered = _delegated(Every8dHttpClient.send_sms_filtered)
    send_mms = _delegated(Every8dHttpClient.send_mms)
    send_param_sms = _delegated(Every8dHttpClient.send_param_sms)
    get_delivery_status_text = _delegated(Every8dHttpClient.get_delivery_status_text)
    get_delivery_status_page = _delegated(Every8dHttpClient.get_delivery_status_page)
    iter_delivery_status_pages = _delegated(Every8dHttpClient.iter_delivery_status_pages)
    iter_delivery_status = _delegated(Every8dHttpClient.iter_delivery_status)
    reply_pages = _delegated(Every8dHttpClient.reply_pages)
    iter_replies = _delegated(Every8dHttpClient.iter_replies)
    get_credit = _delegated(Every8dHttpClient.get_credit)
    erase_booking = _delegated(Every8dHttpClient.erase_booking)

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with getCredit (the UI's Test button and ``airflow connections test``)."""
        try:
            return self._http_client().check()
        except ValueError as error:  # a connection without host, login or password
            return False, str(error)
