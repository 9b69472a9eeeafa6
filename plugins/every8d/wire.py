"""The gateway's wire formats: pure parsing and formatting, no I/O, no Airflow.

Everything EVERY8D answers is plain text (or, for the newer endpoints, small
JSON documents).  This module turns those bodies into typed results or Arrow
tables and raises :mod:`every8d.errors` exceptions for error bodies, so the
hook only moves bytes and the parsers can be property-tested on their own.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from every8d.errors import (
    AUTH_CODES,
    TEMPORARY_CODES,
    GatewayError,
    UnknownStatusCodeError,
    WireFormatError,
)

TAIPEI = ZoneInfo("Asia/Taipei")
SCHEDULE_FORMAT = "%Y%m%d%H%M%S"
LISTING_TIME_FORMAT = "%Y/%m/%d %H:%M:%S"
STATUS_PAGE_SIZE = 1000
REPLY_PAGE_SIZE = 10
MAX_PARAM_FIELDS = 5

# -- endpoints ---------------------------------------------------------------

SEND_SMS = "sendSMS.ashx"
SEND_SMS_FILTERED = "sendSMS4FilterMessage.ashx"
SEND_PARAM_SMS = "SendParamSMS.ashx"
SEND_MMS = "MMS/sendMMS.ashx"
DELIVERY_STATUS = "getDeliveryStatus.ashx"
MMS_DELIVERY_STATUS = "MMS/getDeliveryStatus.ashx"
REPLY_MESSAGES = "getReplyMessage.ashx"
CREDIT = "getCredit.ashx"
ERASE_BOOKING = "eraseBooking.ashx"
MMS_ERASE_BOOKING = "MMS/eraseBooking.ashx"

SEND_ENDPOINTS = frozenset({SEND_SMS, SEND_SMS_FILTERED, SEND_PARAM_SMS, SEND_MMS})
API_PATH = "API21/HTTP/"

# -- code tables ---------------------------------------------------------------

StatusGroup = Literal["delivered", "failed", "pending", "scheduled", "cancelled", "expired", "reply", "test"]


@dataclass(frozen=True)
class StatusInfo:
    """What a delivery status code means, and whether it can still change."""

    code: int
    meaning: str
    meaning_zh: str
    group: StatusGroup
    final: bool


_STATUSES = [
    StatusInfo(0, "handed to the carrier", "已發送", "pending", False),
    StatusInfo(100, "delivered", "發送成功", "delivered", True),
    StatusInfo(101, "not delivered: handset problem", "手機端因素未能送達", "failed", True),
    StatusInfo(102, "not delivered: carrier equipment fault", "電信終端設備異常未能送達", "failed", True),
    StatusInfo(103, "no such mobile number", "無此手機號碼", "failed", True),
    StatusInfo(104, "not delivered: carrier equipment fault", "電信終端設備異常未能送達", "failed", True),
    StatusInfo(105, "not delivered: carrier equipment fault", "電信終端設備異常未能送達", "failed", True),
    StatusInfo(106, "not delivered: carrier equipment fault", "電信終端設備異常未能送達", "failed", True),
    StatusInfo(107, "expired before the handset received it", "逾時收訊", "expired", True),
    StatusInfo(300, "scheduled", "預約簡訊", "scheduled", False),
    StatusInfo(301, "not sent: no credit", "無額度(或額度不足)無法發送", "failed", True),
    StatusInfo(303, "cancelled", "取消簡訊", "cancelled", True),
    StatusInfo(500, "not sent: international SMS not enabled", "未開通國際簡訊，無法發送國際簡訊", "failed", True),
    StatusInfo(700, "MMS sent", "MMS 已發送", "delivered", True),
    StatusInfo(888, "test mode, not sent", "測試模式", "test", True),
    StatusInfo(999, "a reply from the recipient", "回覆簡訊", "reply", True),
    StatusInfo(-1, "parameter error", "參數錯誤", "failed", True),
    StatusInfo(-2, "bad credentials", "帳號或密碼錯誤", "failed", True),
    StatusInfo(-3, "invalid or blacklisted number", "無效門號", "failed", True),
    StatusInfo(-4, "schedule time expired more than 24 hours ago", "預計發送時間已過去 24 小時以上", "expired", True),
    StatusInfo(-5, "content too long", "內容過長", "failed", True),
    StatusInfo(-6, "bad time format", "時間格式錯誤", "failed", True),
]
STATUS_CODES: dict[int, StatusInfo] = {info.code: info for info in _STATUSES}


def status_info(code: int) -> StatusInfo:
    """The table entry for a delivery status code; unknown codes are pending, not final."""
    return STATUS_CODES.get(code) or StatusInfo(code, f"unknown status {code}", "", "pending", False)


ERROR_MEANINGS: dict[int, str] = {
    -99: "unknown error on the gateway: contact the vendor",
    -100: "bad account or password",
    -101: "bad password",
    -300: "account and password must not be empty",
    -24: "message content is empty",
    -27: "destination number is empty",
    -306: "bad mobile number format",
    -303: "MMS subject too long",
    -304: "MMS image missing or invalid",
    -305: "MMS image type not supported (jpg, jpeg, png, gif)",
    -314: "MMS image too large",
    -98: "every number was filtered: the same text was sent to it within 24 hours",
    -6: "bad schedule time format",
    -3: "not found",
    -4: "already deleted or already sent",
    -8: "temporarily unavailable, try again later",
}
_ENDPOINT_MEANINGS: dict[tuple[str, int], str] = {
    (ERASE_BOOKING, -3): "booking not found",
    (MMS_ERASE_BOOKING, -3): "booking not found",
    (ERASE_BOOKING, -4): "booking already deleted or already sent",
    (MMS_ERASE_BOOKING, -4): "booking already deleted or already sent",
}


def error_meaning(endpoint: str, code: int) -> str:
    """English meaning of a gateway error code as answered by ``endpoint``."""
    return _ENDPOINT_MEANINGS.get((endpoint, code)) or ERROR_MEANINGS.get(code, f"unknown error code {code}")


_ERROR_BODY = re.compile(r"^-(\d+)(?:\s*,\s*(.*))?$", re.DOTALL)


def parse_error_body(text: str) -> tuple[int, str] | None:
    """``(-code, message)`` when ``text`` is an error body ``-<code>,<message>``, else None."""
    match = _ERROR_BODY.match(text.strip())
    if not match:
        return None
    return -int(match.group(1)), (match.group(2) or "").strip()


def gateway_error(endpoint: str, code: int, message: str = "") -> GatewayError:
    """The exception for gateway error ``code`` on ``endpoint`` (class chosen by code)."""
    return GatewayError(endpoint, code, error_meaning(endpoint, code), message)


def raise_for_error_body(text: str, endpoint: str) -> None:
    """Raise the matching :class:`GatewayError` when ``text`` is an error body."""
    parsed = parse_error_body(text)
    if parsed is not None:
        raise gateway_error(endpoint, *parsed)


# -- times ----------------------------------------------------------------------


def format_schedule_time(when: datetime) -> str:
    """``when`` as the gateway's ``ST`` value: ``yyyyMMddHHmmss`` in Asia/Taipei.

    The machine's own zone is never used: a naive datetime is refused.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("schedule times must be timezone-aware (the gateway wants Asia/Taipei time)")
    return when.astimezone(TAIPEI).strftime(SCHEDULE_FORMAT)


def parse_taipei_time(text: str, fmt: str = LISTING_TIME_FORMAT) -> datetime:
    """A gateway time string (Taipei local time) as an aware datetime."""
    return datetime.strptime(text.strip(), fmt).replace(tzinfo=TAIPEI)


# -- sends -----------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """What a send call answered.

    :param credit: points left on the account after the send.
    :param sent: messages accepted (``SENDED``).
    :param cost: points charged for this call.
    :param unsent: messages not sent for lack of credit (their status is 301).
    :param batch_id: the batch to query status with; None for legacy answers without one.
    :param filtered: numbers the 24-hour duplicate filter removed (filter endpoint only).
    """

    credit: Decimal
    sent: int
    cost: Decimal
    unsent: int
    batch_id: str
    filtered: tuple[str, ...] = ()


def _decimal(value: str, endpoint: str, what: str, body: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise WireFormatError(endpoint, f"{what} is not a number", body) from None
    if not number.is_finite():
        raise WireFormatError(endpoint, f"{what} is not a finite number", body)
    return number


def _count(value: str, endpoint: str, what: str, body: str) -> int:
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        raise WireFormatError(endpoint, f"{what} is not a count", body)
    return int(value)


#: A batch id is a whole UUID (the spec's example: ``220478cc-8506-49b2-93b7-2505f651c12e``).  Anything
#: shorter is an answer cut in transit, never a batch: a prefix of a UUID, or the ``0`` of a cut UNSEND.
_BATCH_ID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def parse_send_response(text: str, endpoint: str = SEND_SMS) -> SendResult:
    """Parse ``CREDIT,SENDED,COST,UNSEND,BATCH_ID`` (plus ``,FILTERED`` on the filter endpoint).

    The legacy four-field answer ``CREDIT,SENDED,COST,BATCH_ID`` (the spec's own
    example) parses too, with ``unsent=0``.  Error bodies raise, and so does an
    answer without a complete batch id: a cut answer still splits into fields, so
    only a whole UUID in the batch-id field proves the answer arrived whole.
    """
    body = text.strip()
    if not body:
        raise WireFormatError(endpoint, "empty answer to a send")
    raise_for_error_body(body, endpoint)
    fields = body.split(",")
    if len(fields) == 4:
        credit, sent, cost, batch_id = fields
        unsent, filtered = "0", ""
    elif len(fields) == 5:
        credit, sent, cost, unsent, batch_id = fields
        filtered = ""
    elif len(fields) == 6:
        credit, sent, cost, unsent, batch_id, filtered = fields
    else:
        raise WireFormatError(endpoint, f"a send answer has 4 to 6 fields, not {len(fields)}", body)
    batch_id = batch_id.strip()
    if not _BATCH_ID.match(batch_id):
        raise WireFormatError(endpoint, "batch id missing, cut or malformed (a whole UUID is required)", body)
    return SendResult(
        credit=_decimal(credit, endpoint, "CREDIT", body),
        sent=_count(sent, endpoint, "SENDED", body),
        cost=_decimal(cost, endpoint, "COST", body),
        unsent=_count(unsent, endpoint, "UNSEND", body),
        batch_id=batch_id,
        filtered=_filtered_numbers(filtered, endpoint, body),
    )


def _filtered_numbers(field_text: str, endpoint: str, body: str) -> tuple[str, ...]:
    """The sixth field, ``number/number/...``: an empty part (``a/`` or ``a//b``) is a cut answer."""
    if not field_text.strip():
        return ()
    numbers = tuple(number.strip() for number in field_text.split("/"))
    if not all(numbers):
        raise WireFormatError(endpoint, "the filtered numbers field has an empty entry (a cut answer)", body)
    return numbers


def parse_param_send_response(text: str, endpoint: str = SEND_PARAM_SMS) -> SendResult:
    """Parse SendParamSMS's JSON answer ``{"Result":..,"Status":..,"Msg":..}``."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise WireFormatError(endpoint, "answer is not JSON", text) from None
    if not isinstance(document, dict) or "Result" not in document:
        raise WireFormatError(endpoint, "JSON answer has no Result", text)
    message = str(document.get("Msg") or "")
    if document["Result"] is not True:
        try:
            code = int(str(document.get("Status", "")).strip())
        except ValueError:
            raise WireFormatError(endpoint, "failed answer without a numeric Status", text) from None
        raise gateway_error(endpoint, code if code < 0 else -abs(code), message)
    return parse_send_response(message, endpoint)


# -- credit and erase ---------------------------------------------------------------


def parse_credit(text: str, endpoint: str = CREDIT) -> Decimal:
    """Parse getCredit's answer: the account's points, e.g. ``2310.00``."""
    body = text.strip()
    if not body:
        raise WireFormatError(endpoint, "empty answer")
    raise_for_error_body(body, endpoint)
    return _decimal(body, endpoint, "credit", body)


@dataclass(frozen=True)
class EraseResult:
    """Outcome of cancelling a scheduled batch; ``found=False`` for the documented empty body."""

    found: bool
    deleted: int = 0
    refunded: Decimal = Decimal(0)
    #: True when the answer was lost and the cancellation was read from the batch's status (303 rows).
    confirmed_by_status: bool = False


def parse_erase_response(text: str, endpoint: str = ERASE_BOOKING) -> EraseResult:
    """Parse ``a,b`` (messages deleted, points refunded); an empty body means nothing was found."""
    body = text.strip()
    if not body:
        return EraseResult(found=False)
    raise_for_error_body(body, endpoint)
    fields = body.split(",")
    if len(fields) != 2:
        raise WireFormatError(endpoint, "an erase answer has 2 fields", body)
    return EraseResult(
        found=True,
        deleted=_count(fields[0], endpoint, "deleted count", body),
        refunded=_decimal(fields[1], endpoint, "refunded points", body),
    )


# -- delivery status -------------------------------------------------------------------

STATUS_PAGE_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("mobile", pa.string(), nullable=False),
        pa.field("sent_at", pa.timestamp("us", tz="UTC")),
        pa.field("points", pa.decimal128(12, 2)),
        pa.field("status", pa.int32(), nullable=False),
        pa.field("received_at", pa.timestamp("us", tz="UTC")),
        pa.field("record_id", pa.string()),
    ]
)


@dataclass(frozen=True)
class DeliveryStatus:
    """One message's status as listed by getDeliveryStatus."""

    name: str
    mobile: str
    sent_at: datetime | None
    points: Decimal | None
    status: int
    received_at: datetime | None = None
    record_id: str | None = None

    @property
    def info(self) -> StatusInfo:
        return status_info(self.status)


@dataclass(frozen=True)
class StatusPage:
    """One or more pages of a batch's status: the batch's count line and the rows as Arrow.

    ``page_rows`` and ``page_totals`` keep what each page held and what its count
    line said, so a caller can prove the listing complete (:func:`listing_problem`).
    """

    total: int
    table: pa.Table = field(repr=False)
    page_rows: tuple[int, ...] = ()
    page_totals: tuple[int, ...] = ()

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def records(self) -> Iterator[DeliveryStatus]:
        """The page as dataclasses, for callers who want objects rather than columns."""
        for row in self.table.to_pylist():
            yield DeliveryStatus(**row)


def listing_problem(total: int, page_rows: Sequence[int], page_size: int, page_totals: Sequence[int] = ()) -> str | None:
    """Why the pages read so far are not a complete listing of ``total`` rows, or None when they are.

    Complete means: the pages needed for ``total`` (at least one) were all read,
    every page but the last holds exactly ``page_size`` rows, the rows add up to
    ``total``, and every page's count line says ``total``.  A cut page still parses,
    so nothing short of this proves the listing whole.
    """
    moved = sorted({count for count in page_totals if count != total})
    if moved:
        return f"the count line changed between pages ({total} then {moved[0]})"
    expected = max(1, math.ceil(total / page_size))
    if len(page_rows) != expected:
        return f"{len(page_rows)} page(s) read, {expected} needed for {total} row(s)"
    for number, rows in enumerate(page_rows[:-1], start=1):
        if rows != page_size:
            return f"page {number} holds {rows} row(s), not {page_size}"
    seen = sum(page_rows)
    if seen != total:
        return f"{seen} row(s) listed, the count line says {total}"
    return None


def _taipei_to_utc(strings: pa.Array, endpoint: str) -> pa.Array:
    """``yyyy/MM/dd HH:mm:ss`` Taipei text → UTC timestamps; empty text → null."""
    blank = pc.equal(pc.utf8_trim_whitespace(strings), "")
    cleaned = pc.if_else(blank, pa.scalar(None, pa.string()), strings)
    try:
        local = pc.strptime(cleaned, format=LISTING_TIME_FORMAT, unit="us")
    except pa.ArrowInvalid:
        raise WireFormatError(endpoint, "a time is not yyyy/MM/dd HH:mm:ss") from None
    return pc.cast(pc.assume_timezone(local, "Asia/Taipei"), pa.timestamp("us", tz="UTC"))


def _empty_status_table() -> pa.Table:
    return pa.Table.from_batches([], schema=STATUS_PAGE_SCHEMA)  # (``empty_table()`` imports pandas)


def _split_total(text: str, endpoint: str) -> tuple[int, str]:
    body = text.lstrip("\ufeff")
    head, _, rest = body.partition("\n")
    head = head.strip()
    if not head:
        raise WireFormatError(endpoint, "empty answer", text)
    if head.startswith("-"):
        raise_for_error_body(body, endpoint)
    if not head.isascii() or not head.isdigit():
        raise WireFormatError(endpoint, "first line is not the batch's message count", text)
    return int(head), rest


#: A line with something on it (whitespace-only lines are not rows, on either parsing path).
_CONTENT_LINE = re.compile(r"^[^\S\n]*\S", re.MULTILINE)
KNOWN_STATUS_CODES = pa.array(sorted(STATUS_CODES), pa.int32())


def check_known_statuses(table: pa.Table, endpoint: str) -> None:
    """Raise :class:`UnknownStatusCodeError` when ``table`` holds a code the code table lacks.

    A row cut inside STATUS (``10`` from ``101``) parses; merging it would write a
    transition that never happened into the append-only history.
    """
    if table.num_rows == 0:
        return
    unknown = pc.invert(pc.is_in(table.column("status"), value_set=KNOWN_STATUS_CODES))
    rows = pc.sum(unknown).as_py() or 0
    if rows:
        codes = pc.unique(table.column("status").filter(unknown)).to_pylist()
        raise UnknownStatusCodeError(endpoint, tuple(sorted(codes)), rows)


def parse_status_page(text: str, endpoint: str = DELIVERY_STATUS) -> StatusPage:
    """Parse a text status page: a count line, then tab-separated rows.

    Rows carry NAME, MOBILE, SEND_TIME, COST, STATUS and, in later revisions,
    RECEIVED_TIME; all rows of one page have the same shape.  NAME may be empty,
    and is read as whatever precedes the fixed columns, so a stray tab in it
    cannot shift MOBILE or STATUS.  A page whose rows all have the same width
    goes through Arrow's CSV reader in one C++ call; anything else (a tab in a
    name, blank lines, stray ``\\r``, bad values) through the Arrow compute
    kernels, which give the same table and say which row is wrong.  Either way,
    no Python loop per row.  Unknown status codes raise.
    """
    return parse_status_pages([text], endpoint)


def parse_status_pages(texts: Sequence[str], endpoint: str = DELIVERY_STATUS) -> StatusPage:
    """Several consecutive text pages of one listing as one table, rows in listing order.

    The pages' rows are joined and parsed in one CSV call (a few MB at once,
    on Arrow's threads), which is far cheaper than a call per 1000-row page.
    When that joined text is not uniform, each page is parsed on its own as
    :func:`parse_status_page` would.  ``total`` is the first page's count line;
    ``page_rows`` / ``page_totals`` say what each page held.
    """
    totals_and_rows = [_split_total(text, endpoint) for text in texts]
    page_totals = tuple(count for count, _ in totals_and_rows)
    page_rows = tuple(len(_CONTENT_LINE.findall(rest)) for _, rest in totals_and_rows)
    total = page_totals[0] if page_totals else 0
    rests = [rest if rest.endswith("\n") else rest + "\n"
             for _, rest in totals_and_rows if rest and not rest.isspace()]
    if not rests:
        return StatusPage(total, _empty_status_table(), page_rows, page_totals)
    table = _status_rows_csv("".join(rests), endpoint)
    if table is None:
        table = pa.concat_tables(
            [_status_rows_csv(rest, endpoint) or _status_rows_kernels(rest, endpoint) for rest in rests]
        )
    if table.num_rows != sum(page_rows):
        raise WireFormatError(endpoint, f"{table.num_rows} rows parsed from {sum(page_rows)} lines")
    check_known_statuses(table, endpoint)
    return StatusPage(total, table, page_rows, page_totals)


_TIME_TEXT = pa.dictionary(pa.int32(), pa.string())
#: Rows of a status listing as the CSV reader should type them: times stay text (dictionary-encoded,
#: since a batch repeats a few send and receive times) and are converted once per distinct value.
_CSV_COLUMN_TYPES = (pa.string(), pa.string(), _TIME_TEXT, pa.decimal128(12, 2), pa.int32(), _TIME_TEXT)
#: Blocks the CSV reader hands to its threads; one page (~64 KB) stays one block.
_CSV_BLOCK_SIZE = 1 << 20


@functools.cache
def _csv_parse_options() -> Any:
    """Status rows are tab-separated with no quoting; blank lines are skipped."""
    import pyarrow.csv as pacsv

    return pacsv.ParseOptions(
        delimiter="\t", quote_char=False, double_quote=False, escape_char=False, newlines_in_values=False,
        ignore_empty_lines=True,
    )


@functools.cache
def _csv_convert_options(columns: int) -> Any:
    """Column types for ``columns``-wide rows; an empty COST or STATUS must fail, not become null."""
    import pyarrow.csv as pacsv

    # Text from a Python str is valid UTF-8 already.
    return pacsv.ConvertOptions(
        column_types={f"f{index}": kind for index, kind in enumerate(_CSV_COLUMN_TYPES[:columns])},
        null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False, check_utf8=False,
    )


def _status_rows_csv(rest: str, endpoint: str) -> pa.Table | None:
    """The fast path: all rows in one ``pyarrow.csv`` call when they have one width (5 or 6), else None.

    The CSV reader insists on one width for the whole text, skips only truly
    empty lines and treats a lone ``\\r`` as a line break.  So text with
    mixed widths, a lone ``\\r``, a whitespace-only line (its STATUS cannot
    convert), a tab in every NAME (the columns do not type) or any bad value
    returns None and takes the kernel path, which decides what it means.
    """
    import pyarrow.csv as pacsv

    if "\r" in rest and _BARE_CR.search(rest):
        return None
    try:
        # The reader cannot size a last line that has no line break.
        data = (rest if rest.endswith("\n") else rest + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return None
    width = data[: data.find(b"\n")].count(b"\t") + 1
    if width not in (5, 6):
        return None
    read = pacsv.ReadOptions(
        autogenerate_column_names=True, use_threads=len(data) > _CSV_BLOCK_SIZE, block_size=_CSV_BLOCK_SIZE
    )
    try:
        table = pacsv.read_csv(pa.py_buffer(data), read_options=read, parse_options=_csv_parse_options(),
                               convert_options=_csv_convert_options(width))
        rows = table.num_rows
        sent_at = _times(table.column(2), endpoint)
        received_at = _times(table.column(5), endpoint) if width == 6 else pa.nulls(rows, _UTC)
    except (WireFormatError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if width == 6 and _delivered_without_receipt(table.column(4), received_at) is not None:
        return None
    return pa.Table.from_arrays(
        [table.column(0), table.column(1), sent_at, table.column(3), table.column(4), received_at,
         pa.nulls(rows, pa.string())],
        schema=STATUS_PAGE_SCHEMA,
    )


_BARE_CR = re.compile(r"\r(?!\n)")
_UTC = pa.timestamp("us", tz="UTC")


def _times(column: pa.ChunkedArray, endpoint: str) -> pa.ChunkedArray:
    """Dictionary-encoded Taipei time text → UTC timestamps, converting each distinct text once."""
    return pa.chunked_array(
        [_taipei_to_utc(chunk.dictionary, endpoint).take(chunk.indices) for chunk in column.chunks], _UTC
    )


def _delivered_without_receipt(status: Any, received: Any) -> int | None:
    """Index of the first delivered (100) row without RECEIVED_TIME in a 6-column page, or None.

    The gateway gives every delivered SMS its receipt time; a page cut just
    after the tab before it would otherwise parse as a smaller truth.
    """
    bad = pc.and_(pc.equal(status, 100), pc.is_null(received))
    if not pc.any(bad).as_py():
        return None
    return pc.index(bad, True).as_py()


def _status_rows_kernels(rest: str, endpoint: str) -> pa.Table:
    """Status rows split with Arrow compute kernels, read by their fixed columns; errors name the row.

    A row's shape comes from its last cell: a number is STATUS (5 columns), a
    time or nothing is RECEIVED_TIME (6 columns).  All rows of a page must have
    one shape: a row cut inside STATUS (``...\\t10`` among 6-column rows) does not.
    The fixed columns are counted from the right and NAME is whatever is left,
    so a tab inside a name cannot shift the other columns.
    """
    lines = pc.list_flatten(pc.split_pattern(pa.array([rest]), "\n"))
    lines = pc.utf8_rtrim(lines, characters="\r")
    lines = lines.filter(pc.not_equal(pc.utf8_trim_whitespace(lines), ""))
    if len(lines) == 0:
        return _empty_status_table()
    cells = pc.split_pattern(lines, "\t")
    widths = pc.list_value_length(cells).cast(pa.int64())
    flat = pc.list_flatten(cells)
    ends = pc.cumulative_sum(widths)
    last = flat.take(pc.subtract(ends, 1))
    five_shaped = pc.match_substring_regex(last, r"^\s*-?\d+\s*$")
    shapes = pc.unique(five_shaped).to_pylist()
    if len(shapes) > 1:
        odd = pc.index(five_shaped, not five_shaped[0].as_py()).as_py()
        raise WireFormatError(endpoint, f"row {odd + 1} of the page does not have the shape of row 1")
    columns = 5 if shapes[0] else 6
    short = pc.less(widths, columns)
    if pc.any(short).as_py():
        raise WireFormatError(endpoint, f"row {pc.index(short, True).as_py() + 1} of the page has too few columns")

    def from_right(position: int) -> pa.Array:  # 1 = MOBILE ... columns - 1 = the last column
        return flat.take(pc.subtract(ends, columns - position))

    starts = pc.subtract(ends, widths)
    names = flat.take(starts)
    extra = pc.subtract(widths, columns)
    if pc.any(pc.greater(extra, 0)).as_py():  # tabs inside NAME: rare, joined back row by row
        cell_lists, extras = cells.to_pylist(), extra.to_pylist()
        names = pa.array(["\t".join(row[: more + 1]) for row, more in zip(cell_lists, extras)], pa.string())
    try:
        # Padding around a number is accepted, as Arrow's CSV reader on the fast path accepts it.
        points = pc.cast(pc.utf8_trim_whitespace(from_right(3)), pa.decimal128(12, 2))
        status = pc.cast(pc.utf8_trim_whitespace(from_right(4)), pa.int32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise WireFormatError(endpoint, "COST or STATUS is not a number") from None
    received = _taipei_to_utc(from_right(5), endpoint) if columns == 6 else pa.nulls(len(lines), _UTC)
    if columns == 6:
        odd = _delivered_without_receipt(status, received)
        if odd is not None:
            raise WireFormatError(endpoint, f"row {odd + 1} is delivered (100) without its RECEIVED_TIME (a cut answer)")
    return pa.Table.from_arrays(
        [
            names,
            from_right(1),
            _taipei_to_utc(from_right(2), endpoint),
            points,
            status,
            received,
            pa.nulls(len(lines), pa.string()),
        ],
        schema=STATUS_PAGE_SCHEMA,
    )


#: The JSON status form is not in the spec; implementations spell its keys their own way.  Keys are
#: compared lower-cased without ``_``/``-``/spaces; the first spelling found wins.
_JSON_COUNT_KEYS = ("count", "smscount", "total", "totalcount", "recordcount")
_JSON_RECORDS_KEYS = ("records", "data", "list", "rows", "items", "record")
_JSON_STATUS_KEYS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "mobile": ("mobile", "phone", "phonenumber", "mobilephone", "dest", "number"),
    "send_time": ("sendtime", "senttime", "sendat", "sentat"),
    "points": ("cost", "points", "charge", "credit"),
    "status": ("status", "statuscode", "state"),
    "received_time": ("receivedtime", "receivetime", "recvtime", "receivedat", "deliveredtime"),
    "record_id": ("mr", "msgrecord", "recordid", "messagerecord"),
}
_REQUIRED_JSON_FIELDS = ("mobile", "status")


def _key(name: Any) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def _pick(document: dict, spellings: Sequence[str]) -> Any:
    by_key = {_key(name): value for name, value in document.items()}
    for spelling in spellings:
        if spelling in by_key:
            return by_key[spelling]
    return None


def _json_cell(value: Any) -> str:
    return "" if value is None else str(value)


def _json_times(strings: pa.Array, endpoint: str) -> pa.Array:
    """Times as JSON implementations write them (``2026/05/01 12:00:00``, ``2026-05-01T12:00:00``,
    ``20260501120000``, with or without fractions) → UTC, read as Taipei time."""
    text = pc.utf8_trim_whitespace(strings)
    text = pc.replace_substring_regex(text, r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$", r"\1/\2/\3 \4:\5:\6")
    text = pc.replace_substring_regex(text, r"^(\d{4})-(\d{1,2})-(\d{1,2})[T ]", r"\1/\2/\3 ")
    text = pc.replace_substring_regex(text, r"\.\d+$", "")
    return _taipei_to_utc(text, endpoint)


def parse_status_page_json(text: str, endpoint: str = DELIVERY_STATUS) -> StatusPage:
    """Parse the JSON status form (``RESPFORMAT=1``), which also carries each message's MR.

    The form is undocumented, so plausible spellings of its keys (``Count`` /
    ``SMS_COUNT``, ``Records`` / ``DATA``, ``SendTime`` / ``SEND_TIME``) and of
    its dates are accepted; anything else fails naming the keys received (never values).
    """
    stripped = text.strip()
    if stripped.startswith("-"):
        raise_for_error_body(stripped, endpoint)
    try:
        document = json.loads(stripped)
    except (json.JSONDecodeError, TypeError):
        raise WireFormatError(endpoint, "not a JSON status page", text) from None
    if not isinstance(document, dict):
        raise WireFormatError(endpoint, "a JSON status page is not an object")
    keys = ", ".join(sorted(map(str, document))) or "none"
    count, records = _pick(document, _JSON_COUNT_KEYS), _pick(document, _JSON_RECORDS_KEYS)
    try:
        total = int(str(count).strip())
    except ValueError:
        raise WireFormatError(endpoint, f"no message count in the JSON status page (keys received: {keys})") from None
    if records is None:
        records = []
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise WireFormatError(endpoint, f"the JSON status records are not a list of objects (keys received: {keys})")
    if not records:
        return StatusPage(total, _empty_status_table(), (0,), (total,))
    first = {_key(name) for name in records[0]}
    missing = [name for name in _REQUIRED_JSON_FIELDS if not first & set(_JSON_STATUS_KEYS[name])]
    if missing:
        received = ", ".join(sorted(map(str, records[0]))) or "none"
        raise WireFormatError(
            endpoint, f"JSON status records have no {' or '.join(missing)} (record keys received: {received})"
        )
    columns = {key: [_json_cell(_pick(r, spellings)) for r in records] for key, spellings in _JSON_STATUS_KEYS.items()}
    try:
        points = pc.cast(pa.array(columns["points"]), pa.decimal128(12, 2))
        status = pc.cast(pa.array(columns["status"]), pa.int32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise WireFormatError(endpoint, "Cost or Status is not a number") from None
    record_ids = pa.array(columns["record_id"])
    table = pa.Table.from_arrays(
        [
            pa.array(columns["name"]),
            pa.array(columns["mobile"]),
            _json_times(pa.array(columns["send_time"]), endpoint),
            points,
            status,
            _json_times(pa.array(columns["received_time"]), endpoint),
            pc.if_else(pc.equal(record_ids, ""), pa.scalar(None, pa.string()), record_ids),
        ],
        schema=STATUS_PAGE_SCHEMA,
    )
    check_known_statuses(table, endpoint)
    return StatusPage(total, table, (table.num_rows,), (total,))


def concat_status_pages(pages: Sequence[StatusPage]) -> StatusPage:
    """Consecutive pages of one listing as one :class:`StatusPage` (their per-page counts kept)."""
    return StatusPage(
        pages[0].total if pages else 0,
        pa.concat_tables([page.table for page in pages]) if pages else _empty_status_table(),
        tuple(rows for page in pages for rows in page.page_rows),
        tuple(count for page in pages for count in page.page_totals),
    )


# -- replies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A recipient's reply to a batch; ``replied_at`` in UTC."""

    name: str
    mobile: str
    content: str
    replied_at: datetime


@dataclass(frozen=True)
class ReplyPage:
    total: int
    replies: tuple[Reply, ...]


_MOBILE_CELL = re.compile(r"^\s*\+?\d{8,15}\s*$")


def parse_reply_page(text: str, endpoint: str = REPLY_MESSAGES) -> ReplyPage:
    """Parse getReplyMessage: a count line, then rows NAME, MOBILE, CONTENT, SEND_TIME (10 a page).

    Read by fixed columns: SEND_TIME is the last cell, MOBILE the first cell after
    NAME that is a number, CONTENT everything between (a reply may hold tabs).
    Times are Taipei local time, returned in UTC.
    """
    total, rest = _split_total(text, endpoint)
    replies = []
    for number, line in enumerate(rest.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < 4:
            raise WireFormatError(endpoint, f"reply row {number} has fewer than 4 columns")
        try:
            replied_at = parse_taipei_time(cells[-1]).astimezone(timezone.utc)
        except ValueError:
            raise WireFormatError(endpoint, f"reply row {number} has a bad time") from None
        mobile_at = next((i for i in range(1, len(cells) - 2) if _MOBILE_CELL.match(cells[i])), 1)
        replies.append(Reply("\t".join(cells[:mobile_at]), cells[mobile_at].strip(),
                             "\t".join(cells[mobile_at + 1:-1]), replied_at))
    return ReplyPage(total, tuple(replies))


# -- personalized sends ---------------------------------------------------------------------


@dataclass(frozen=True)
class ParamRecipient:
    """One recipient of a SendParamSMS call.

    :param mobile: the number, as the gateway accepts it (E.164 or 09xxxxxxxx).
    :param params: up to five values for ``%field1%``..``%field5%``; with no
        template, a single value that is the whole text.
    :param record_id: ``Mr``, echoed back in status pushes and the JSON status form.
    :param send_at: this recipient's own schedule time (aware datetime).
    """

    mobile: str
    params: Sequence[str] = ()
    name: str = ""
    email: str = ""
    record_id: str = ""
    send_at: datetime | None = None


_LISTING_BREAKERS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")


def clean_name(value: str) -> str:
    """``value`` with tabs, line breaks and other control characters turned into one space.

    NAME comes back in every status and reply listing, which are tab- and
    line-separated: one tab or newline there makes the batch unreadable.
    """
    return _LISTING_BREAKERS.sub(" ", value).strip() if value else value


def build_param_sms_body(
    recipients: Sequence[ParamRecipient],
    *,
    template: str,
    subject: str = "",
    schedule_at: datetime | None = None,
    validity_minutes: int | None = None,
) -> dict[str, Any]:
    """The SendParamSMS JSON document, without credentials (the hook adds them)."""
    if not recipients:
        raise ValueError("SendParamSMS needs at least one recipient")
    rows = []
    for index, recipient in enumerate(recipients, start=1):
        params = list(recipient.params)
        if template:
            if len(params) > MAX_PARAM_FIELDS:
                raise ValueError(f"recipient {index} has {len(params)} values; at most {MAX_PARAM_FIELDS} fit")
            if any("|" in value for value in params):
                raise ValueError(f"recipient {index} has a '|' in a value, which the gateway uses as separator")
        elif len(params) != 1 or not params[0]:
            raise ValueError(f"recipient {index} needs exactly one non-empty text when there is no template")
        rows.append(
            {
                "Name": clean_name(recipient.name),
                "Mobile": recipient.mobile,
                "Email": clean_name(recipient.email),
                "SendTime": format_schedule_time(recipient.send_at) if recipient.send_at else "",
                "Param": "|".join(params),
                "Mr": recipient.record_id,
            }
        )
    return {
        "SB": subject,
        "MSG": template,
        "ST": format_schedule_time(schedule_at) if schedule_at else "",
        "RETRYTIME": "" if validity_minutes is None else str(validity_minutes),
        "RecipientDataList": rows,
    }


# -- MMS images ---------------------------------------------------------------------------------

MMS_MAX_IMAGE_BYTES = 300 * 1024
MMS_IMAGE_TYPES = ("jpg", "jpeg", "png", "gif")
MMS_SUBJECT_MAX_CJK = 15
MMS_SUBJECT_MAX_ASCII = 95


def detect_image_type(image: bytes) -> str | None:
    """``jpg``, ``png`` or ``gif`` from the file's magic bytes, or None."""
    if image.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if image.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if image[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def check_mms_image(image: bytes, declared_type: str | None = None) -> str:
    """Validate an MMS image before sending; return the TYPE value to send.

    :raises ValueError: empty, too large, not jpg/png/gif, or not the declared type.
    """
    if not image:
        raise ValueError("the MMS image is empty")
    if len(image) > MMS_MAX_IMAGE_BYTES:
        raise ValueError(f"the MMS image has {len(image)} bytes; the gateway takes at most {MMS_MAX_IMAGE_BYTES}")
    detected = detect_image_type(image)
    if detected is None:
        raise ValueError("the MMS image is not a JPEG, PNG or GIF file")
    if declared_type is not None:
        declared = declared_type.lower().lstrip(".")
        if declared not in MMS_IMAGE_TYPES:
            raise ValueError(f"MMS image type {declared_type!r} is not one of {', '.join(MMS_IMAGE_TYPES)}")
        if {declared, detected} != {"jpeg", "jpg"} and declared != detected:
            raise ValueError(f"the MMS image is a {detected} file, not {declared}")
        return declared
    return detected


def check_mms_size(image: bytes, text: str) -> None:
    """Image plus text (圖加文) must fit the gateway's largest MMS.

    :raises ValueError: naming the size and the limit.
    """
    from every8d.pricing import mms_size

    size = mms_size(len(image), text)
    if size > MMS_MAX_IMAGE_BYTES:
        raise ValueError(f"the MMS has {size} bytes of image plus text; the gateway takes at most {MMS_MAX_IMAGE_BYTES}")


_TAIWAN_MOBILE = re.compile(r"^(?:\+886|886|0)9\d{8}$")


def is_taiwan_mobile(number: str) -> bool:
    """True for a Taiwan mobile (``09xxxxxxxx``, ``+8869xxxxxxxx``), spaces and dashes ignored."""
    return bool(_TAIWAN_MOBILE.match(re.sub(r"[\s\-()]", "", number)))


def check_mms_subject(subject: str) -> None:
    """The gateway limits MMS subjects to 15 characters, or 95 when pure ASCII."""
    limit = MMS_SUBJECT_MAX_ASCII if subject.isascii() else MMS_SUBJECT_MAX_CJK
    if len(subject) > limit:
        raise ValueError(f"the MMS subject has {len(subject)} characters; at most {limit} are allowed")
