"""getReplyMessage: recipients' replies to a batch, 10 a page."""

from __future__ import annotations

import re
from datetime import UTC

from every8d.client.results import Reply, ReplyPage
from every8d.client.v21.common import parse_taipei_time, split_total
from every8d.errors import WireFormatError

REPLY_MESSAGES = "getReplyMessage.ashx"
REPLY_PAGE_SIZE = 10


_MOBILE_CELL = re.compile(r"^\s*\+?\d{8,15}\s*$")


def parse_reply_page(text: str, endpoint: str = REPLY_MESSAGES) -> ReplyPage:
    """Parse getReplyMessage: a count line, then rows NAME, MOBILE, CONTENT, SEND_TIME (10 a page).

    Read by fixed columns: SEND_TIME is the last cell, MOBILE the first cell after
    NAME that is a number, CONTENT everything between (a reply may hold tabs).
    Times are Taipei local time, returned in UTC.
    """
    total, rest = split_total(text, endpoint)
    replies = []
    for number, line in enumerate(rest.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < 4:
            raise WireFormatError(endpoint, f"reply row {number} has fewer than 4 columns")
        try:
            replied_at = parse_taipei_time(cells[-1]).astimezone(UTC)
        except ValueError:
            raise WireFormatError(endpoint, f"reply row {number} has a bad time") from None
        mobile_at = next((i for i in range(1, len(cells) - 2) if _MOBILE_CELL.match(cells[i])), 1)
        replies.append(
            Reply(
                "\t".join(cells[:mobile_at]),
                cells[mobile_at].strip(),
                "\t".join(cells[mobile_at + 1 : -1]),
                replied_at,
            )
        )
    return ReplyPage(total, tuple(replies))
