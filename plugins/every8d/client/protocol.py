"""``Every8dClient``: what campaign, tracking, sensors, triggers and the CLI may ask of the gateway.

They depend on this protocol only, never on a transport, a session or the
Airflow hook, so a client for another API version (or a test double that
records calls) can stand in.  :class:`~every8d.client.v21.client.Every8dHttpClient`
implements it over HTTP API 2.1, and :class:`~every8d.hooks.every8d.Every8dHook`
delegates to one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from every8d.client.results import (
    DeliveryStatus,
    EraseResult,
    ParamRecipient,
    Reply,
    ReplyPage,
    SendResult,
    StatusPage,
)
from every8d.client.settings import ClientSettings


@runtime_checkable
class Every8dClient(Protocol):
    """Typed calls to the gateway; see :class:`~every8d.client.v21.client.Every8dHttpClient` for what each
    does."""

    @property
    def settings(self) -> ClientSettings: ...

    def send_sms(
        self,
        message: str,
        destinations: Iterable[str],
        *,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> SendResult: ...

    def send_sms_filtered(
        self,
        message: str,
        destinations: Iterable[str],
        *,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> SendResult: ...

    def send_mms(
        self,
        message: str,
        destinations: Iterable[str],
        *,
        image: bytes,
        image_type: str | None = None,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> SendResult: ...

    def send_param_sms(
        self,
        recipients: Sequence[ParamRecipient],
        *,
        template: str = "",
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> SendResult: ...

    def get_delivery_status_text(
        self, batch_id: str, page: int = 1, *, mms: bool = False, with_record_ids: bool = False
    ) -> str: ...

    def get_delivery_status_page(
        self, batch_id: str, page: int = 1, *, mms: bool = False, with_record_ids: bool = False
    ) -> StatusPage: ...

    def iter_delivery_status_pages(
        self, batch_id: str, *, mms: bool = False, with_record_ids: bool = False
    ) -> Iterator[StatusPage]: ...

    def iter_delivery_status(
        self, batch_id: str, *, mms: bool = False, with_record_ids: bool = False
    ) -> Iterator[DeliveryStatus]: ...

    def reply_pages(self, batch_id: str) -> list[ReplyPage]: ...

    def iter_replies(self, batch_id: str) -> Iterator[Reply]: ...

    def get_credit(self) -> Decimal: ...

    def erase_booking(self, batch_id: str, *, mms: bool = False) -> EraseResult: ...

    def close(self) -> None: ...
