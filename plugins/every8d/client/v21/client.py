"""``Every8dHttpClient``: the :class:`~every8d.client.protocol.Every8dClient` over HTTP API 2.1."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from every8d.client.pagination import paginate
from every8d.client.results import (
    DeliveryStatus,
    EraseResult,
    ParamRecipient,
    Reply,
    ReplyPage,
    SendResult,
    StatusPage,
)
from every8d.client.settings import ClientSettings, Credentials
from every8d.client.transport import Transport, bad_answer
from every8d.client.v21 import booking, credit, mms, replies, sms, status
from every8d.client.v21.common import API_PATH
from every8d.errors import (
    Every8dError,
    GatewayError,
    HttpStatusError,
    ReadFailedError,
    SendOutcomeUnknownError,
    WireFormatError,
)

log = logging.getLogger(__name__)


class Every8dHttpClient:
    """The whole EVERY8D HTTP API 2.1: typed calls over one :class:`~every8d.client.transport.Transport`.

    Safe to share between threads.  Parsing lives in the endpoint modules of
    :mod:`every8d.client.v21`; this class only chooses forms, call kinds and
    what an unparseable answer means.
    """

    api_path = API_PATH
    settings: ClientSettings

    def __init__(self, settings: ClientSettings, credentials: Credentials) -> None:
        self.settings = settings
        self.transport = Transport(settings, credentials, api_path=self.api_path)

    def __repr__(self) -> str:
        return f"Every8dHttpClient({self.settings.base_url!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.transport.close()

    def __enter__(self) -> Every8dHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sends -------------------------------------------------------------------------

    def _validity(self, validity_minutes: int | None) -> int | None:
        return validity_minutes if validity_minutes is not None else self.settings.validity_minutes

    def _send(
        self, endpoint: str, recipients: int, parser: Any = sms.parse_send_response, **post: Any
    ) -> SendResult:
        """Post a send; an unparseable answer leaves the outcome unknown."""
        text = self.transport.post(endpoint, kind="send", recipients=recipients, **post)
        try:
            return parser(text, endpoint)
        except WireFormatError as error:
            raise bad_answer(endpoint, error.problem, text, True, recipients) from None

    def send_sms(
        self,
        message: str,
        destinations: Iterable[str],
        *,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> SendResult:
        """Send one text to one or more numbers in a single call (``sendSMS.ashx``).

        :param message: the text (UTF-8, any length; the gateway splits over 333 characters).
        :param destinations: numbers, E.164 (``+886912345678``) or local (``0912345678``).
        :param subject: a note for the account's records; not sent to phones.
        :param schedule_at: timezone-aware send time (converted to Asia/Taipei); None sends now.
        :param validity_minutes: how long the gateway keeps trying (``RETRYTIME``).
        :raises SendOutcomeUnknownError: the request left but no usable answer came back.
        """
        form, count = sms.send_form(
            message,
            destinations,
            subject=subject,
            schedule_at=schedule_at,
            validity_minutes=self._validity(validity_minutes),
        )
        return self._send(sms.SEND_SMS, count, form=form)

    def send_sms_filtered(
        self,
        message: str,
        destinations: Iterable[str],
        *,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> SendResult:
        """Like :meth:`send_sms`, but the gateway skips numbers sent the same text in the last 24 h.

        The skipped numbers come back in ``SendResult.filtered``.  When every number
        is skipped the gateway answers -98, raised as a :class:`GatewayError`.
        """
        form, count = sms.send_form(
            message,
            destinations,
            subject=subject,
            schedule_at=schedule_at,
            validity_minutes=self._validity(validity_minutes),
        )
        result = self._send(sms.SEND_SMS_FILTERED, count, form=form)
        problem = sms.filtered_problem(result, form["DEST"].split(","))
        if problem:
            raise SendOutcomeUnknownError(sms.SEND_SMS_FILTERED, problem, count)
        return result

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
    ) -> SendResult:
        """Send an MMS (one jpg/png/gif image plus text, together up to 300 KB) to Taiwan mobiles.

        International numbers are refused before anything is sent (the gateway sends MMS in Taiwan only).

        :param image: the image file's bytes; its type is read from its magic bytes.
        :param image_type: optional declared type, checked against the bytes.
        """
        kind = mms.check_mms(image, image_type, subject, message)
        form, count = sms.send_form(
            message,
            destinations,
            subject=subject,
            schedule_at=schedule_at,
            validity_minutes=self._validity(validity_minutes),
        )
        return self._send(mms.SEND_MMS, count, form=mms.mms_form(form, image, kind))

    def send_param_sms(
        self,
        recipients: Sequence[ParamRecipient],
        *,
        template: str = "",
        subject: str = "",
        schedule_at: datetime | None = None,
        validity_minutes: int | None = None,
    ) -> SendResult:
        """Send personalized texts in one call (``SendParamSMS.ashx``).

        With a ``template``, each recipient's ``params`` fill ``%field1%``..``%field5%``;
        without one, each recipient's single param is its whole text.  Each
        recipient's ``record_id`` (``Mr``) comes back in pushes and JSON status.
        """
        body = sms.build_param_sms_body(
            recipients,
            template=template,
            subject=subject,
            schedule_at=schedule_at,
            validity_minutes=self._validity(validity_minutes),
        )
        return self._send(sms.SEND_PARAM_SMS, len(recipients), sms.parse_param_send_response, json_body=body)

    # -- status and replies -----------------------------------------------------------------

    def get_delivery_status_text(
        self, batch_id: str, page: int = 1, *, mms: bool = False, with_record_ids: bool = False
    ) -> str:
        """One status page as the gateway wrote it, for callers that parse many pages at once.

        (:func:`every8d.client.v21.status.parse_status_pages`, or ``parse_status_page_json`` for the
        JSON form.)
        """
        form = {"BID": batch_id, "PNO": str(page)}
        if with_record_ids:
            form["RESPFORMAT"] = "1"
        return self.transport.post(status.endpoint(mms), form)

    def get_delivery_status_page(
        self, batch_id: str, page: int = 1, *, mms: bool = False, with_record_ids: bool = False
    ) -> StatusPage:
        """One page (up to 1000 rows) of a batch's delivery status.

        :param with_record_ids: ask for the JSON form, which also carries each message's MR.
        """
        text = self.get_delivery_status_text(batch_id, page, mms=mms, with_record_ids=with_record_ids)
        parse = status.parse_status_page_json if with_record_ids else status.parse_status_page
        return parse(text, status.endpoint(mms))

    def iter_delivery_status_pages(
        self, batch_id: str, *, mms: bool = False, with_record_ids: bool = False
    ) -> Iterator[StatusPage]:
        """Page through a batch's status (``PNO`` 1, 2, ...) until its count has been read.

        Each page is yielded as it arrives, so callers can write it out and keep
        memory flat.  The listing must be complete (every page but the last holds
        exactly 1000 rows, the rows add up to the count line): otherwise
        :class:`~every8d.errors.IncompleteListingError` is raised after the last
        page, so a caller must not act on the pages until the iterator is exhausted.
        """
        endpoint = status.endpoint(mms)
        parse = status.parse_status_page_json if with_record_ids else status.parse_status_page
        return paginate(
            lambda number: self.get_delivery_status_text(
                batch_id, number, mms=mms, with_record_ids=with_record_ids
            ),
            lambda texts: parse(texts[0], endpoint),
            endpoint=endpoint,
            page_size=status.STATUS_PAGE_SIZE,
        )

    def iter_delivery_status(
        self, batch_id: str, *, mms: bool = False, with_record_ids: bool = False
    ) -> Iterator[DeliveryStatus]:
        """Every message of a batch as :class:`~every8d.client.results.DeliveryStatus`, page by page."""
        for page in self.iter_delivery_status_pages(batch_id, mms=mms, with_record_ids=with_record_ids):
            yield from page.records()

    def reply_pages(self, batch_id: str) -> list[ReplyPage]:
        """Every reply page of a batch (``getReplyMessage.ashx``, 10 a page), proven complete.

        :raises IncompleteListingError: a short page before the last, or rows that do not add up.
        """
        return list(
            paginate(
                lambda number: self.transport.post(
                    replies.REPLY_MESSAGES, {"BID": batch_id, "PNO": str(number)}
                ),
                lambda texts: replies.parse_reply_page(texts[0], replies.REPLY_MESSAGES),
                endpoint=replies.REPLY_MESSAGES,
                page_size=replies.REPLY_PAGE_SIZE,
            )
        )

    def iter_replies(self, batch_id: str) -> Iterator[Reply]:
        """Every reply to a batch (``replied_at`` in UTC); nothing is yielded unless the listing is
        complete."""
        for page in self.reply_pages(batch_id):
            yield from page.replies

    # -- account and bookings -------------------------------------------------------------------

    def get_credit(self) -> Decimal:
        """Points left on the account."""
        return credit.parse_credit(self.transport.post(credit.CREDIT), credit.CREDIT)

    def erase_booking(self, batch_id: str, *, mms: bool = False) -> EraseResult:
        """Cancel a batch's still-scheduled messages and get their points back.

        An erase is not a plain read: an attempt whose answer was lost may have
        cancelled everything, so a retry then finds nothing.  So attempts are
        repeated here, not by the session, and after a lost attempt an empty
        answer (or -4 "already deleted") is confirmed through the batch's status:
        rows in status 303 mean the lost attempt did the work (``found=True``,
        ``confirmed_by_status=True``; the refund it reported is unknown).  With no
        lost attempt, the gateway's empty answer returns ``EraseResult(found=False)``.
        """
        endpoint = booking.endpoint(mms)
        attempts = max(self.settings.read_retries, 0) + 1
        lost = False
        for attempt in range(attempts):
            try:
                text = self.transport.post(endpoint, {"BID": batch_id}, kind="erase")
                result = booking.parse_erase_response(text, endpoint)
            except (ReadFailedError, HttpStatusError) as error:
                if not error.retry_safe or attempt + 1 == attempts:
                    raise
                lost = True
                time.sleep(min(0.5 * 2**attempt, 5.0))
                continue
            except GatewayError as error:
                if lost and error.code == -4:
                    return self._confirm_erase(batch_id, mms)
                raise
            if result.found or not lost:
                return result
            return self._confirm_erase(batch_id, mms)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _confirm_erase(self, batch_id: str, mms: bool) -> EraseResult:
        """After a lost erase attempt: did it cancel?  The batch's cancelled (303) rows say."""
        import pyarrow.compute as pc

        cancelled = 0
        for page in self.iter_delivery_status_pages(batch_id, mms=mms):
            cancelled += pc.sum(pc.equal(page.table.column("status"), 303)).as_py() or 0
        log.info("EVERY8D erase of batch %s: a lost attempt cancelled %d message(s)", batch_id, cancelled)
        if not cancelled:
            return EraseResult(found=False)
        return EraseResult(found=True, deleted=cancelled, confirmed_by_status=True)

    def check(self) -> tuple[bool, str]:
        """``(ok, message)`` from a getCredit call: what a connection test shows."""
        try:
            points = self.get_credit()
        except (Every8dError, ValueError) as error:
            return False, str(error)
        return True, f"Connected to EVERY8D at {self.settings.base_url}: {points} points left"
