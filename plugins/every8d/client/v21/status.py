"""getDeliveryStatus (SMS and MMS): the status code table and the listing pages, text and JSON, as Arrow."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from every8d.arrow_types import POINTS, UTC_TIME
from every8d.client.results import STATUS_PAGE_SCHEMA, StatusPage
from every8d.client.statuses import STATUS_CODES
from every8d.client.v21.common import LISTING_TIME_FORMAT, raise_for_error_body, split_total
from every8d.errors import UnknownStatusCodeError, WireFormatError

DELIVERY_STATUS = "getDeliveryStatus.ashx"
MMS_DELIVERY_STATUS = "MMS/getDeliveryStatus.ashx"
STATUS_PAGE_SIZE = 1000


# -- pages ----------------------------------------------------------------------


def _taipei_to_utc(strings: pa.Array, endpoint: str) -> pa.Array:
    """``yyyy/MM/dd HH:mm:ss`` Taipei text → UTC timestamps; empty text → null."""
    blank = pc.equal(pc.utf8_trim_whitespace(strings), "")
    cleaned = pc.if_else(blank, pa.scalar(None, pa.string()), strings)
    try:
        local = pc.strptime(cleaned, format=LISTING_TIME_FORMAT, unit="us")
    except pa.ArrowInvalid:
        raise WireFormatError(endpoint, "a time is not yyyy/MM/dd HH:mm:ss") from None
    return pc.cast(pc.assume_timezone(local, "Asia/Taipei"), UTC_TIME)


def _empty_status_table() -> pa.Table:
    return pa.Table.from_batches([], schema=STATUS_PAGE_SCHEMA)  # (``empty_table()`` imports pandas)


def content_lines(text: str) -> int:
    """Lines with something on them (whitespace-only lines are not rows, on either parsing path).

    The count of ``^[^\\S\\n]*\\S`` matches (multiline), in a few C calls: a regex scan of a
    1000-row page took 0.36 ms holding the GIL, this 0.06 ms.
    """
    lines = text.split("\n")
    return len(lines) - lines.count("") - sum(map(str.isspace, lines))


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
    totals_and_rows = [split_total(text, endpoint) for text in texts]
    page_totals = tuple(count for count, _ in totals_and_rows)
    page_rows = tuple(content_lines(rest) for _, rest in totals_and_rows)
    total = page_totals[0] if page_totals else 0
    rests = [
        rest if rest.endswith("\n") else rest + "\n"
        for _, rest in totals_and_rows
        if rest and not rest.isspace()
    ]
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
_CSV_COLUMN_TYPES = (pa.string(), pa.string(), _TIME_TEXT, POINTS, pa.int32(), _TIME_TEXT)
#: Blocks the CSV reader hands to its threads; one page (~64 KB) stays one block.
_CSV_BLOCK_SIZE = 1 << 20


@functools.cache
def _csv_parse_options() -> Any:
    """Status rows are tab-separated with no quoting; blank lines are skipped."""
    import pyarrow.csv as pacsv

    return pacsv.ParseOptions(
        delimiter="\t",
        quote_char=False,
        double_quote=False,
        escape_char=False,
        newlines_in_values=False,
        ignore_empty_lines=True,
    )


@functools.cache
def _csv_convert_options(columns: int) -> Any:
    """Column types for ``columns``-wide rows; an empty COST or STATUS must fail, not become null."""
    import pyarrow.csv as pacsv

    # Text from a Python str is valid UTF-8 already.
    return pacsv.ConvertOptions(
        column_types={f"f{index}": kind for index, kind in enumerate(_CSV_COLUMN_TYPES[:columns])},
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=False,
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
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=read,
            parse_options=_csv_parse_options(),
            convert_options=_csv_convert_options(width),
        )
        rows = table.num_rows
        sent_at = _times(table.column(2), endpoint)
        received_at = _times(table.column(5), endpoint) if width == 6 else pa.nulls(rows, UTC_TIME)
    except (WireFormatError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if width == 6 and _delivered_without_receipt(table.column(4), received_at) is not None:
        return None
    return pa.Table.from_arrays(
        [
            table.column(0),
            table.column(1),
            sent_at,
            table.column(3),
            table.column(4),
            received_at,
            pa.nulls(rows, pa.string()),
        ],
        schema=STATUS_PAGE_SCHEMA,
    )


_BARE_CR = re.compile(r"\r(?!\n)")


def _times(column: pa.ChunkedArray, endpoint: str) -> pa.ChunkedArray:
    """Dictionary-encoded Taipei time text → UTC timestamps, converting each distinct text once."""
    return pa.chunked_array(
        [_taipei_to_utc(chunk.dictionary, endpoint).take(chunk.indices) for chunk in column.chunks], UTC_TIME
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
        raise WireFormatError(
            endpoint, f"row {pc.index(short, True).as_py() + 1} of the page has too few columns"
        )

    def from_right(position: int) -> pa.Array:  # 1 = MOBILE ... columns - 1 = the last column
        return flat.take(pc.subtract(ends, columns - position))

    starts = pc.subtract(ends, widths)
    names = flat.take(starts)
    extra = pc.subtract(widths, columns)
    if pc.any(pc.greater(extra, 0)).as_py():  # tabs inside NAME: rare, joined back row by row
        cell_lists, extras = cells.to_pylist(), extra.to_pylist()
        names = pa.array(
            ["\t".join(row[: more + 1]) for row, more in zip(cell_lists, extras, strict=True)], pa.string()
        )
    try:
        # Padding around a number is accepted, as Arrow's CSV reader on the fast path accepts it.
        points = pc.cast(pc.utf8_trim_whitespace(from_right(3)), POINTS)
        status = pc.cast(pc.utf8_trim_whitespace(from_right(4)), pa.int32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise WireFormatError(endpoint, "COST or STATUS is not a number") from None
    received = _taipei_to_utc(from_right(5), endpoint) if columns == 6 else pa.nulls(len(lines), UTC_TIME)
    if columns == 6:
        odd = _delivered_without_receipt(status, received)
        if odd is not None:
            raise WireFormatError(
                endpoint, f"row {odd + 1} is delivered (100) without its RECEIVED_TIME (a cut answer)"
            )
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
    text = pc.replace_substring_regex(
        text, r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$", r"\1/\2/\3 \4:\5:\6"
    )
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
        raise WireFormatError(
            endpoint, f"no message count in the JSON status page (keys received: {keys})"
        ) from None
    if records is None:
        records = []
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise WireFormatError(
            endpoint, f"the JSON status records are not a list of objects (keys received: {keys})"
        )
    if not records:
        return StatusPage(total, _empty_status_table(), (0,), (total,))
    first = {_key(name) for name in records[0]}
    missing = [name for name in _REQUIRED_JSON_FIELDS if not first & set(_JSON_STATUS_KEYS[name])]
    if missing:
        received = ", ".join(sorted(map(str, records[0]))) or "none"
        raise WireFormatError(
            endpoint, f"JSON status records have no {' or '.join(missing)} (record keys received: {received})"
        )
    columns = {
        key: [_json_cell(_pick(r, spellings)) for r in records]
        for key, spellings in _JSON_STATUS_KEYS.items()
    }
    try:
        points = pc.cast(pa.array(columns["points"]), POINTS)
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


def endpoint(mms: bool) -> str:
    """The status endpoint for SMS or MMS batches."""
    return MMS_DELIVERY_STATUS if mms else DELIVERY_STATUS
