"""Replies to a batch, whether polled (``getReplyMessage``) or pushed (STATUS 999), and opt-outs.

A reply has the same ``event_key`` however it arrived (batch, number, reply
time to the second, MD5 of the text), so a reply both pushed and polled is
stored once.  Replies whose trimmed, upper-cased text is an opt-out keyword
put the number on the suppression list.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from every8d.optout import OptOutMatcher
from every8d.phones import normalize_observed
from every8d.warehouse.base import Warehouse
from every8d.warehouse.tables import REPLIES, SUPPRESSIONS

if TYPE_CHECKING:
    from every8d.client import Every8dClient, Reply

log = logging.getLogger(__name__)

#: Reply texts (trimmed, upper-cased) that mean "stop texting me".  The analytics
#: views in every8d/tracking/sql/ list the same words.
OPT_OUT_REASON = "opt-out reply"


def reply_event_key(batch_id: str, mobile: str, replied_at: datetime, text: str | None) -> str:
    """The key of a reply: ``reply:<batch>:<E.164>:<epoch seconds>:<md5 of text>``.

    Polled replies and STATUS=999 pushes (in the push merge) both get it here, so a reply is counted once.
    """
    seconds = int(replied_at.astimezone(UTC).timestamp())
    digest = hashlib.md5((text or "").encode("utf-8")).hexdigest()
    return f"reply:{batch_id}:{mobile}:{seconds}:{digest}"


def replies_table(batch_id: str, replies: Iterable[Reply], source: str = "poll") -> pa.Table:
    """Gateway replies as ``every8d_replies`` rows (numbers in E.164, times in UTC)."""
    rows = list(replies)
    mobiles = normalize_observed(pa.array([r.mobile for r in rows], pa.string())).to_pylist()
    return replies_from_columns(
        [batch_id] * len(rows),
        mobiles,
        [r.replied_at for r in rows],
        [r.content for r in rows],
        source=source,
    )


def replies_from_columns(
    batch_ids: list[str], mobiles: list[str], times: list[datetime], texts: list[str | None], *, source: str
) -> pa.Table:
    """Replies (numbers already E.164) as ``every8d_replies`` rows, one per :func:`reply_event_key`."""
    times = [t.astimezone(UTC) for t in times]
    keys = [reply_event_key(b, m, t, x) for b, m, t, x in zip(batch_ids, mobiles, times, texts, strict=True)]
    first = sorted({key: index for index, key in reversed(list(enumerate(keys)))}.values())  # one row per key
    batch_ids, mobiles, keys = ([column[i] for i in first] for column in (batch_ids, mobiles, keys))
    times, texts = [times[i] for i in first], [texts[i] for i in first]
    return pa.Table.from_pydict(
        {
            "batch_id": batch_ids,
            "mobile": mobiles,
            "reply_text": texts,
            "replied_at": times,
            "source": [source] * len(keys),
            "event_key": keys,
        },
        schema=REPLIES.schema,
    )


def fetch_replies(client: Every8dClient, batch_id: str) -> pa.Table:
    """Every reply to a batch, read from the gateway (10 a page; replies are few)."""
    return replies_table(batch_id, client.iter_replies(batch_id))


def suppress_opt_outs(warehouse: Warehouse, *, now: datetime, matcher: OptOutMatcher | None = None) -> int:
    """Add every number that replied with an opt-out keyword to the suppression list; new ones.

    Uses the same :class:`~every8d.optout.OptOutMatcher` as the push endpoint.
    Replies are few, and only distinct texts of not-yet-suppressed numbers are matched.
    A number that is not E.164 is logged (as a count) and skipped: it must not block the merge.
    """
    from every8d.tracking.suppressions import E164_PATTERN, add_suppressions

    matcher = matcher or OptOutMatcher.from_env()
    candidates = warehouse.query_arrow(
        f"SELECT DISTINCT mobile, reply_text FROM {REPLIES.name} "
        f"WHERE mobile NOT IN (SELECT mobile FROM {SUPPRESSIONS.name})"
    )
    texts = candidates.column("reply_text").to_pylist()
    opted_out = [
        mobile
        for mobile, text in zip(candidates.column("mobile").to_pylist(), texts, strict=True)
        if matcher(text)
    ]
    e164 = re.compile(E164_PATTERN)
    good = [mobile for mobile in opted_out if e164.match(mobile)]
    if len(good) < len(opted_out):
        log.warning("%d opt-out number(s) are not E.164 and were not suppressed", len(opted_out) - len(good))
    opted_out = good
    return add_suppressions(warehouse, opted_out, OPT_OUT_REASON, "reply", now=now)


def record_replies(
    warehouse: Warehouse, replies: pa.Table, *, now: datetime, matcher: OptOutMatcher | None = None
) -> int:
    """Store replies (a reply already stored is skipped) and apply opt-outs; returns new replies."""
    if replies.num_rows == 0:
        return 0
    with warehouse.transaction():
        added = warehouse.upsert(REPLIES.name, replies, REPLIES.primary_key, update_columns=[])
        suppress_opt_outs(warehouse, now=now, matcher=matcher)
    return max(added, 0)
