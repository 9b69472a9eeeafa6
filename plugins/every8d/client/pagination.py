"""The one paginator: a numbered listing (``PNO`` 1, 2, ...) read until its count line is covered, proven
whole.

Delivery status (SMS and MMS, text and JSON) and replies page the same way:
page 1 carries the count, hence how many pages there are; every page but the
last is full; the rows add up to the count.  A cut page still parses, so
nothing short of :func:`listing_problem` proves a listing complete.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, TypeVar

from every8d.errors import IncompleteListingError


class Listed(Protocol):
    """What a parsed chunk of pages says about itself: rows held and count line, per page."""

    @property
    def page_rows(self) -> Sequence[int]: ...

    @property
    def page_totals(self) -> Sequence[int]: ...


ChunkT = TypeVar("ChunkT", bound=Listed)
T = TypeVar("T")


def listing_problem(
    total: int, page_rows: Sequence[int], page_size: int, page_totals: Sequence[int] = ()
) -> str | None:
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


def _prefetched(function: Callable[[int], T], items: Iterable[int], workers: int, window: int) -> Iterator[T]:
    """``map`` in order, ``workers`` calls at a time, at most ``window`` results fetched ahead of the
    consumer: the network stays busy while the consumer parses, and memory stays bounded."""
    if window <= 1:  # one page at a time, when asked for: nothing fetched ahead
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="every8d-pages") as pool:
        pending: deque[Future[T]] = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def paginate(
    fetch: Callable[[int], str],
    parse: Callable[[list[str]], ChunkT],
    *,
    endpoint: str,
    page_size: int,
    concurrency: int = 1,
    pages_per_parse: int = 1,
) -> Iterator[ChunkT]:
    """Every page of a listing, parsed ``pages_per_parse`` at a time, in listing order.

    :param fetch: page number → the page's text as the gateway wrote it.
    :param parse: consecutive page texts → one chunk (its ``page_rows`` / ``page_totals`` per page).
    :param concurrency: pages fetched at once after page 1 (which says how many there are); with
        ``pages_per_parse`` > 1 pages are fetched ahead while earlier ones are parsed, else one at a time.

    Reading stops after a short page (nothing after it can make the listing whole).
    Chunks are yielded as they arrive so callers can spool them, but after the last
    one an incomplete listing raises :class:`IncompleteListingError`: a caller acts
    only once the iterator is exhausted.
    """
    page_rows: list[int] = []
    page_totals: list[int] = []

    def take(texts: list[str]) -> ChunkT:
        chunk = parse(texts)
        page_rows.extend(chunk.page_rows)
        page_totals.extend(chunk.page_totals)
        return chunk

    first = take([fetch(1)])
    yield first
    total = page_totals[0]
    if page_rows[0] >= page_size and page_rows[0] < total:
        numbers = range(2, math.ceil(total / page_size) + 1)
        workers = max(concurrency, 1)
        group = max(pages_per_parse, 1)
        texts: list[str] = []
        window = 1 if workers == 1 and group == 1 else workers + group
        for text in _prefetched(fetch, numbers, workers, window=window):
            texts.append(text)
            if len(texts) >= group:
                chunk = take(texts)
                texts = []
                yield chunk
                if any(rows < page_size for rows in chunk.page_rows):
                    break
        if texts:
            yield take(texts)
    problem = listing_problem(total, page_rows, page_size, page_totals)
    if problem:
        raise IncompleteListingError(endpoint, problem)
