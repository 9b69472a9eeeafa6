"""Property tests for the wire parsers: round trips, arbitrary text, commas in messages."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from every8d.client.results import EraseResult, ParamRecipient
from every8d.client.statuses import status_info
from every8d.client.v21.booking import ERASE_BOOKING, parse_erase_response
from every8d.client.v21.common import LISTING_TIME_FORMAT, SCHEDULE_FORMAT, TAIPEI, format_schedule_time
from every8d.client.v21.credit import parse_credit
from every8d.client.v21.mms import check_mms_image, check_mms_subject
from every8d.client.v21.replies import parse_reply_page
from every8d.client.v21.sms import (
    SEND_SMS,
    SEND_SMS_FILTERED,
    build_param_sms_body,
    parse_param_send_response,
    parse_send_response,
)
from every8d.client.v21.status import (
    DELIVERY_STATUS,
    STATUS_CODES,
    STATUS_PAGE_SCHEMA,
    _status_rows_csv,
    _status_rows_kernels,
    content_lines,
    parse_status_page,
    parse_status_page_json,
    parse_status_pages,
)
from every8d.errors import AuthenticationError, Every8dError, GatewayError, WireFormatError

decimals = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=10**6)
batch_ids = st.uuids().map(str)
# Names and replies may hold anything but the row/cell separators.
cell_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\t\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=20,
)
mobiles = st.from_regex(r"\+8869[0-9]{8}", fullmatch=True)
# pyarrow imports pandas (and loads time zones) on first use: pay that here, not inside a Hypothesis deadline.
parse_status_page("1\n\t+886912000001\t2024/01/02 03:04:05\t1.0\t100\t2024/01/02 03:05:00\n")
listing_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda moment: moment.replace(microsecond=0, tzinfo=TAIPEI)
)


@given(credit=decimals, sent=counts, cost=decimals, unsent=counts, batch_id=batch_ids)
def test_send_response_round_trip(credit, sent, cost, unsent, batch_id):
    text = f"{credit},{sent},{cost},{unsent},{batch_id}"
    result = parse_send_response(text)
    assert (result.credit, result.sent, result.cost, result.unsent, result.batch_id) == (
        credit,
        sent,
        cost,
        unsent,
        batch_id,
    )
    assert result.filtered == ()


@given(credit=decimals, sent=counts, cost=decimals, batch_id=batch_ids)
def test_legacy_four_field_answer_parses(credit, sent, cost, batch_id):
    result = parse_send_response(f"{credit},{sent},{cost},{batch_id}\r\n")
    assert (result.credit, result.sent, result.cost, result.unsent, result.batch_id) == (
        credit,
        sent,
        cost,
        0,
        batch_id,
    )


@given(numbers=st.lists(mobiles, max_size=5), batch_id=batch_ids)
def test_filter_endpoint_sixth_field(numbers, batch_id):
    result = parse_send_response(f"90.00,3,3.0,0,{batch_id},{'/'.join(numbers)}", SEND_SMS_FILTERED)
    assert result.filtered == tuple(numbers)


@given(
    code=st.integers(min_value=1, max_value=999),
    message=st.text(max_size=60),
    space=st.sampled_from(["", " "]),
)
def test_error_body_keeps_code_and_whole_message(code, message, space):
    text = f"-{code},{space}{message}"
    with pytest.raises(GatewayError) as raised:
        parse_send_response(text)
    assert raised.value.code == -code
    assert raised.value.gateway_message == message.strip()
    assert str(-code) in str(raised.value)


def test_error_message_with_commas_and_colons_is_whole():
    with pytest.raises(GatewayError) as raised:
        parse_send_response("-306,手機格式不符:0912,345678")
    assert raised.value.code == -306
    assert raised.value.meaning == "bad mobile number format"
    assert raised.value.gateway_message == "手機格式不符:0912,345678"


@pytest.mark.parametrize("code", [-100, -101, -300])
def test_credential_codes_are_authentication_errors(code):
    with pytest.raises(AuthenticationError):
        parse_credit(f"{code},帳號或密碼錯誤")


def test_unknown_code_still_raises_with_raw_text():
    with pytest.raises(GatewayError) as raised:
        parse_credit("-777,新的錯誤")
    assert raised.value.code == -777
    assert "unknown error code -777" in str(raised.value)
    assert "新的錯誤" in str(raised.value)


@given(text=st.text(max_size=200))
def test_arbitrary_text_never_escapes_the_error_hierarchy(text):
    for parse in (
        parse_send_response,
        parse_credit,
        parse_erase_response,
        parse_status_page,
        parse_status_page_json,
        parse_reply_page,
        parse_param_send_response,
    ):
        with contextlib.suppress(Every8dError):
            parse(text)


@given(
    whole=st.builds(
        lambda credit, sent, cost, unsent, batch_id: f"{credit},{sent},{cost},{unsent},{batch_id}",
        decimals,
        counts,
        decimals,
        counts,
        batch_ids,
    ),
    data=st.data(),
)
def test_a_send_answer_cut_short_never_parses(whole, data):
    cut = data.draw(st.integers(min_value=0, max_value=len(whole) - 1))
    with pytest.raises(WireFormatError):
        parse_send_response(whole[:cut])


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "<html><body>Server Error</body></html>",
        "OK",
        "1,2",
        "999500.00,100,100.0,0,cfa91f2",
        "999500.00,100,100.0,0",
    ],
)
def test_malformed_send_answers_are_wire_format_errors(body):
    with pytest.raises(WireFormatError) as raised:
        parse_send_response(body)
    assert raised.value.endpoint == SEND_SMS


def _delivered_has_receipt(row):
    """A delivered (100) row always carries its receipt time: without one it reads as a cut answer."""
    name, mobile, sent, cost, status, received = row
    return (name, mobile, sent, cost, status, received or sent) if status == 100 else row


status_rows = st.lists(
    st.tuples(
        cell_text,
        mobiles,
        listing_times,
        st.decimals(min_value=0, max_value=99, places=1),
        st.sampled_from(sorted(STATUS_CODES)),
        st.one_of(st.none(), listing_times),
    ).map(_delivered_has_receipt),
    max_size=30,
)


def _format_status_page(total, rows, columns, newline):
    lines = [str(total)]
    for name, mobile, sent, cost, status, received in rows:
        cells = [name, mobile, sent.strftime(LISTING_TIME_FORMAT), str(cost), str(status)]
        if columns == 6:
            cells.append(received.strftime(LISTING_TIME_FORMAT) if received else "")
        lines.append("\t".join(cells))
    return newline.join(lines) + newline


@settings(max_examples=150)
@given(rows=status_rows, columns=st.sampled_from([5, 6]), newline=st.sampled_from(["\n", "\r\n"]))
def test_status_page_round_trip(rows, columns, newline):
    page = parse_status_page(_format_status_page(len(rows) + 7, rows, columns, newline))
    assert page.total == len(rows) + 7
    assert page.rows == len(rows)
    assert page.table.schema == STATUS_PAGE_SCHEMA
    for parsed, (name, mobile, sent, cost, status, received) in zip(page.records(), rows, strict=True):
        assert parsed.name == name
        assert parsed.mobile == mobile
        assert parsed.sent_at == sent.astimezone(UTC)
        assert parsed.points == cost
        assert parsed.status == status
        expected_received = received.astimezone(UTC) if (received and columns == 6) else None
        assert parsed.received_at == expected_received


def test_status_page_with_empty_names_and_empty_received_times():
    text = (
        "3\r\n"
        "\t+886912000001\t2024/01/02 03:04:05\t1.0\t0\t\r\n"
        "Amy\t+886912000002\t2024/01/02 03:04:05\t2.0\t100\t2024/01/02 03:05:00\r\n"
        "\t+886912000003\t2024/01/02 03:04:05\t1.0\t101\t\r\n"
    )
    records = list(parse_status_page(text).records())
    assert [r.name for r in records] == ["", "Amy", ""]
    assert [r.status for r in records] == [0, 100, 101]
    assert records[1].received_at == datetime(2024, 1, 1, 19, 5, tzinfo=UTC)
    assert records[0].received_at is None and records[2].received_at is None


def test_rows_of_one_page_have_one_shape():
    """Issue 12, point 2: a 6-column row cut inside STATUS (``...\t10`` from ``101``) is not a 5-column
    row."""
    text = (
        "2\n"
        "Amy\t+886912000002\t2024/01/02 03:04:05\t2.0\t100\t2024/01/02 03:05:00\n"
        "\t+886912000003\t2024/01/02 03:04:05\t1.0\t10"
    )
    with pytest.raises(WireFormatError, match="row 2 of the page does not have the shape of row 1"):
        parse_status_page(text)


@pytest.mark.parametrize("body", ["0", "0\r\n", "0\n", "\ufeff0"])
def test_empty_batch_with_or_without_newline(body):
    page = parse_status_page(body)
    assert (page.total, page.rows) == (0, 0)


def test_status_row_with_wrong_column_count_names_the_row():
    with pytest.raises(WireFormatError, match="row 2"):
        parse_status_page("2\nA\t+886912000001\t2024/01/02 03:04:05\t1.0\t100\nbroken row\n")


def test_status_json_form_carries_record_ids():
    document = {
        "Count": 2,
        "Records": [
            {
                "Name": "",
                "Mobile": "+886912000001",
                "SendTime": "2024/01/02 03:04:05",
                "Cost": "1.0",
                "Status": "100",
                "ReceivedTime": "2024/01/02 03:04:09",
                "MR": "r-1",
            },
            {
                "Name": "Bo",
                "Mobile": "+886912000002",
                "SendTime": "2024/01/02 03:04:05",
                "Cost": "1.0",
                "Status": "0",
                "ReceivedTime": "",
                "MR": "",
            },
        ],
    }
    records = list(parse_status_page_json(json.dumps(document)).records())
    assert [r.record_id for r in records] == ["r-1", None]
    assert records[0].received_at == datetime(2024, 1, 1, 19, 4, 9, tzinfo=UTC)


@given(
    moment=st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2098, 1, 1), timezones=st.timezones()
    )
)
def test_schedule_time_is_taipei_whatever_the_zone(moment):
    text = format_schedule_time(moment)
    assert len(text) == 14 and text.isdigit()
    back = datetime.strptime(text, SCHEDULE_FORMAT).replace(tzinfo=TAIPEI)
    assert abs(back - moment.replace(microsecond=0)) <= timedelta(seconds=1)


def test_naive_schedule_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        format_schedule_time(datetime(2030, 1, 1, 9, 0))


def test_schedule_time_converts_utc_to_taipei():
    assert format_schedule_time(datetime(2030, 1, 1, 1, 30, tzinfo=UTC)) == "20300101093000"


@given(deleted=counts, refunded=decimals)
def test_erase_round_trip(deleted, refunded):
    assert parse_erase_response(f"{deleted},{refunded}") == EraseResult(True, deleted, refunded)


@pytest.mark.parametrize("body", ["", "\r\n", "  "])
def test_erase_empty_body_means_nothing_found(body):
    assert parse_erase_response(body) == EraseResult(found=False)


def test_erase_error_codes_have_erase_meanings():
    with pytest.raises(GatewayError, match="booking already deleted or already sent"):
        parse_erase_response("-4,簡訊已刪除或已發送", ERASE_BOOKING)


@given(
    replies=st.lists(
        st.tuples(cell_text, mobiles, st.text(max_size=40).map(lambda s: " ".join(s.split())), listing_times),
        max_size=10,
    )
)
def test_reply_page_round_trip(replies):
    lines = [str(len(replies))] + [
        f"{name}\t{mobile}\t{content}\t{when.strftime(LISTING_TIME_FORMAT)}"
        for name, mobile, content, when in replies
    ]
    page = parse_reply_page("\r\n".join(lines))
    assert page.total == len(replies)
    assert [(r.name, r.mobile, r.content, r.replied_at) for r in page.replies] == list(replies)


def test_param_answer_success_and_failure():
    ok = parse_param_send_response(
        '{"Result":true,"Status":"0","Msg":"99.00,2,2.0,0,220478cc-8506-49b2-93b7-2505f651c12e"}'
    )
    assert (ok.sent, ok.batch_id) == (2, "220478cc-8506-49b2-93b7-2505f651c12e")
    with pytest.raises(AuthenticationError):
        parse_param_send_response('{"Result":false,"Status":"-100","Msg":"帳號或密碼錯誤"}')
    with pytest.raises(WireFormatError):
        parse_param_send_response("<html/>")


def test_param_body_refuses_separator_inside_a_value():
    with pytest.raises(ValueError, match="recipient 2"):
        build_param_sms_body(
            [ParamRecipient("0912000001", ["a"]), ParamRecipient("0912000002", ["a|b"])],
            template="%field1%",
        )


def test_mms_image_checks():
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 10
    assert check_mms_image(png) == "png"
    assert check_mms_image(b"\xff\xd8\xff\xe0rest", "JPEG") == "jpeg"
    with pytest.raises(ValueError, match="not a JPEG, PNG or GIF"):
        check_mms_image(b"BM not supported")
    with pytest.raises(ValueError, match="not gif"):
        check_mms_image(png, "gif")
    with pytest.raises(ValueError, match="at most"):
        check_mms_image(png + b"0" * 300 * 1024)
    with pytest.raises(ValueError, match="at most 15"):
        check_mms_subject("十六個字的主旨十六個字的主旨十六")
    check_mms_subject("An ASCII subject can be much longer than fifteen characters")


@pytest.mark.parametrize(
    ("code", "group", "final"),
    [
        (0, "pending", False),
        (100, "delivered", True),
        (107, "expired", True),
        (300, "scheduled", False),
        (303, "cancelled", True),
        (301, "failed", True),
        (12345, "pending", False),
    ],
)
def test_status_table(code, group, final):
    info = status_info(code)
    assert (info.group, info.final) == (group, final)


# -- the status page's two paths: Arrow's CSV reader (fast) and the compute kernels (any page) -----


def _status_cells(name, mobile, sent, cost, status, received, columns):
    cells = [name, mobile, sent.strftime(LISTING_TIME_FORMAT), str(cost), str(status)]
    if columns == 6:
        cells.append(received.strftime(LISTING_TIME_FORMAT) if received else "")
    return "\t".join(cells)


status_row = st.tuples(
    cell_text,
    mobiles,
    listing_times,
    st.decimals(min_value=0, max_value=99, places=1),
    st.sampled_from(sorted(STATUS_CODES)),
    st.one_of(st.none(), listing_times),
).map(_delivered_has_receipt)
good_lines = st.tuples(status_row, st.sampled_from([5, 6])).map(lambda pair: _status_cells(*pair[0], pair[1]))
# Lines a gateway (or a broken proxy) might put on a page besides well-formed rows.
odd_lines = st.one_of(
    st.just(""),
    st.sampled_from([" ", "\t", "\t\t\t\t\t", " \t \t \t \t \t ", "\u3000\t\t\t\t", "\r", "0", "oops"]),
    st.lists(st.text(alphabet=st.sampled_from("ab1 .:/+-\u3000\r"), max_size=6), min_size=4, max_size=8).map(
        "\t".join
    ),
    # a bad SEND_TIME, COST or STATUS
    st.tuples(
        status_row, st.sampled_from([2, 3, 4]), st.sampled_from(["x", "1.0.0", "", " 1", "2024/13/01"])
    ).map(lambda bad: _with_cell(_status_cells(*bad[0], 6), bad[1], bad[2])),
)


def _with_cell(line, index, value):
    cells = line.split("\t")
    cells[index] = value
    return "\t".join(cells)


@settings(max_examples=200)
@given(
    rows=st.lists(status_row, min_size=1, max_size=25),
    columns=st.sampled_from([5, 6]),
    newline=st.sampled_from(["\n", "\r\n"]),
    trailing=st.sampled_from(["", "\n", "\r\n", "\r\n\r\n"]),
)
def test_uniform_pages_take_the_fast_path_and_match_the_kernels(rows, columns, newline, trailing):
    rest = newline.join(_status_cells(*row, columns) for row in rows) + trailing
    fast = _status_rows_csv(rest, DELIVERY_STATUS)
    assert fast is not None
    assert fast.equals(_status_rows_kernels(rest, DELIVERY_STATUS))
    assert fast.schema == STATUS_PAGE_SCHEMA


@settings(max_examples=400)
@given(
    lines=st.lists(st.one_of(good_lines, odd_lines), min_size=1, max_size=12),
    newline=st.sampled_from(["\n", "\r\n", "\r", "\r\r\n"]),
)
def test_fast_path_agrees_with_the_kernels_or_steps_aside(lines, newline):
    rest = newline.join(lines)
    fast = _status_rows_csv(rest, DELIVERY_STATUS)
    try:
        slow = _status_rows_kernels(rest, DELIVERY_STATUS)
    except WireFormatError:
        assert fast is None  # the fast path never accepts what the kernel path refuses
        return
    if fast is not None:
        assert fast.equals(slow)
        assert fast.schema == slow.schema


def test_blank_lines_and_stray_returns_still_parse():
    text = (
        "4\r\n"
        "\t+886912000001\t2024/01/02 03:04:05\t1.0\t0\t\r\n"
        "\r\n"
        "A\rB\t+886912000002\t2024/01/02 03:04:05\t2.0\t100\t2024/01/02 03:05:00\r\n"
        "  \t \r\n"
        "\t+886912000003\t2024/01/02 03:04:05\t1.0\t101\t\n"
    )
    assert _status_rows_csv(text.partition("\n")[2], DELIVERY_STATUS) is None
    page = parse_status_page(text)
    assert [r.name for r in page.records()] == ["", "A\rB", ""]
    assert [r.status for r in page.records()] == [0, 100, 101]


def test_several_pages_parse_as_one_table_in_listing_order():
    pages = [
        "2500\r\n"
        + "".join(
            f"N{page}-{i}\t+8869120{page:02d}{i:03d}\t2024/01/02 03:{page:02d}:05\t1.0\t100"
            f"\t2024/01/02 03:{page:02d}:{i % 60:02d}\r\n"
            for i in range(rows)
        )
        for page, rows in ((1, 1000), (2, 1000), (3, 500))
    ]
    joined = parse_status_pages(pages)
    assert joined.total == 2500 and joined.rows == 2500
    one_by_one = pa.concat_tables([parse_status_page(page).table for page in pages])
    assert joined.table.equals(one_by_one)
    assert joined.table.column("name")[1000].as_py() == "N2-0"


def test_pages_of_different_widths_fall_back_to_one_page_at_a_time():
    five = "2\r\nA\t+886912000001\t2024/01/02 03:04:05\t1.0\t0\r\n"
    six = "2\r\nB\t+886912000002\t2024/01/02 03:04:05\t2.0\t100\t2024/01/02 03:05:00\r\n"
    page = parse_status_pages([five, six])
    assert [r.status for r in page.records()] == [0, 100]
    assert page.table.column("received_at").null_count == 1


@given(
    text=st.text(alphabet=st.sampled_from(["a", "\t", " ", "\n", "\r", "\u3000", "\x0b", "\x85", "\u2028"]))
)
def test_content_lines_counts_what_the_line_regex_matches(text):
    """A page's row count (lines with a non-space character) is the multiline regex's, without the regex."""
    import re

    assert content_lines(text) == len(re.findall(r"^[^\S\n]*\S", text, re.MULTILINE))
