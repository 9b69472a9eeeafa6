"""A push load generator: gateway-shaped GETs with duplicates, from keep-alive connections.

Used by the load test and ``bench/pushes.py``.  It knows the event key of
every push it sends, so "lost" and "counted twice" are checked against what
was really sent, not against what the receiver claims.  Plain ``http.client``
in threads: ``requests`` and ``httpx`` cost more CPU per call than the
receiver does, and would measure themselves.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from every8d.callbacks.events import event_key
from every8d.client.v21.common import SCHEDULE_FORMAT, TAIPEI

_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
STATUSES = (0, 100, 100, 100, 101, 103, 107, 999)
REPLIES = ("好的 收到", "STOP", "謝謝", "'; DROP TABLE every8d_push_events; --", "退訂")


@dataclass
class LoadResult:
    """What the generator saw: answers per status code and latencies in seconds."""

    sent: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def make_pushes(
    count: int, duplicate_share: float = 0.1, *, seed: int = 7, user_id: str = "demo"
) -> tuple[list[dict[str, str]], set[str]]:
    """``count`` pushes, ``duplicate_share`` of them exact repeats, shuffled; and the unique event keys."""
    rng = random.Random(seed)
    unique_count = count - int(count * duplicate_share)
    start = datetime(2026, 3, 1, 9, 0, tzinfo=TAIPEI)
    pushes: list[dict[str, str]] = []
    keys: set[str] = set()
    for i in range(unique_count):
        batch_id = f"load-{i // 500:05d}"
        mobile = f"+8869{10_000_000 + i:08d}"
        status = STATUSES[i % len(STATUSES)]
        rt = (start + timedelta(seconds=i)).astimezone(TAIPEI).strftime(SCHEDULE_FORMAT)
        sm = REPLIES[i % len(REPLIES)] if status == 999 else ""
        mr = f"mr{i}"
        pushes.append(
            {
                "BatchID": batch_id,
                "RM": mobile,
                "RT": rt,
                "STATUS": str(status),
                "SM": sm,
                "MR": mr,
                "USERID": user_id,
                "CHARGE": "1.0",
                "MSGID": str(i),
            }
        )
        keys.add(event_key(batch_id, mobile, mr, status, rt, sm))
    pushes.extend(rng.choice(pushes[:unique_count]) for _ in range(count - unique_count))
    rng.shuffle(pushes)
    return pushes, keys


async def _fetch(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = _CONTENT_LENGTH.search(head)
    if match is None:
        raise http.client.HTTPException("no Content-Length in the answer")
    return status, await reader.readexactly(int(match.group(1)))


async def _load(host: str, port: int, requests: list[bytes], concurrency: int, timeout: float) -> LoadResult:
    result = LoadResult(sent=len(requests))
    pending = iter(requests)

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        for attempt in range(5):
            try:
                return await asyncio.open_connection(host, port)
            except OSError:
                result.errors += 1
                await asyncio.sleep(0.05 * (attempt + 1))
        return await asyncio.open_connection(host, port)

    async def worker() -> None:
        reader, writer = await connect()
        try:
            for request in pending:
                began = time.perf_counter()
                try:
                    status, _ = await asyncio.wait_for(_fetch(reader, writer, request), timeout)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, http.client.HTTPException):
                    result.errors += 1  # this push is not retried: it counts as lost unless recorded anyway
                    writer.close()
                    reader, writer = await connect()
                    continue
                result.latencies.append(time.perf_counter() - began)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


def run_load(
    push_url: str, token: str, pushes: list[dict[str, str]], concurrency: int = 32, timeout: float = 30.0
) -> LoadResult:
    """GET every push to ``push_url`` (``http://host:port/prefix/push``) over ``concurrency`` connections.

    A bare HTTP/1.1 client on asyncio streams (enough for our own receiver,
    which always answers with a Content-Length), so that the client's CPU
    cost per push stays far below the server's on a shared machine.
    """
    parts = urlsplit(push_url)
    host = parts.hostname or "127.0.0.1"
    head = f" HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n"
    requests = [f"GET {parts.path}?{urlencode({'token': token, **p})}{head}".encode("ascii") for p in pushes]
    gc.freeze()  # the generator's own garbage collections would show up as receiver latency
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(_load(host, parts.port, requests, concurrency, timeout))
    return uvloop.run(_load(host, parts.port, requests, concurrency, timeout))
