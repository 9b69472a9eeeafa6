"""The sandbox gateway's memory: accounts, batches, messages and the clock.

No I/O and no HTTP here, so every rule (charging, filtering, the status
lifecycle, refunds) can be read in one place and driven by a clock that tests
control.  A message's status is a pure function of the message and "now"; the
only mutable facts are credit, cancellations and what was already pushed.
Everything runs on the server's event-loop thread, so there are no locks.
"""

from __future__ import annotations

import heapq
import re
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

#: Taipei has had no daylight saving time since 1979: a fixed offset is exact
#: for every date a sandbox sees, and much cheaper than zoneinfo per row.
TAIPEI = timezone(timedelta(hours=8), "Asia/Taipei")

DEFAULT_RETRY_MINUTES = 1440
FILTER_WINDOW_SECONDS = 24 * 3600
MIN_DELAY_SECONDS = 5
MAX_DELAY_SECONDS = 60

# Status codes the sandbox produces (meanings in DESIGN.md).
SENT, DELIVERED, EXPIRED = 0, 100, 107
SCHEDULED, NO_CREDIT, CANCELLED, NO_INTERNATIONAL = 300, 301, 303, 500
MMS_SENT, REPLY = 700, 999
DEFAULT_OUTCOMES = {"97": 101, "98": 103, "99": 107}

_MOBILE_TW = re.compile(r"09\d{8}")
_MOBILE_E164 = re.compile(r"\+\d{8,15}")
_ST = re.compile(r"\d{14}")


class GatewayError(Exception):
    """A refusal the real gateway answers as ``-<code>,<message>``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


# Messages the gateway uses; shared by every endpoint.
MESSAGES = {
    -3: "查無資料",
    -4: "簡訊已刪除或已發送",
    -6: "預約時間格式錯誤",
    -8: "系統暫時無法提供服務",
    -24: "簡訊內容不得為空值",
    -27: "門號不得為空值",
    -98: "",
    -99: "主機端發生不明錯誤",
    -100: "帳號或密碼錯誤",
    -101: "密碼錯誤",
    -300: "帳號密碼不得為空值",
    -303: "主旨長度超過限制",
    -304: "圖檔錯誤",
    -305: "圖檔格式錯誤",
    -306: "手機格式不符",
    -314: "圖檔大小超過限制",
}


def error(code: int, detail: str | None = None) -> GatewayError:
    """The gateway's error ``code`` with its usual message (plus ``:detail``)."""
    message = MESSAGES.get(code, MESSAGES[-99])
    if detail is not None:
        message = f"{message}:{detail}" if message else detail
    return GatewayError(code, message)


# ---------------------------------------------------------------- time


def parse_taipei(text: str) -> float:
    """``yyyyMMddHHmmss`` in Taipei time to epoch seconds (-6 when malformed)."""
    if not _ST.fullmatch(text):
        raise error(-6)
    try:
        moment = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=TAIPEI)
    except ValueError:
        raise error(-6) from None
    return moment.timestamp()


_SLASH_CACHE: dict[float, str] = {}
_SLASH_CACHE_SIZE = 65536


def taipei_slash(ts: float) -> str:
    """``yyyy/MM/dd HH:mm:ss`` Taipei, the format of status and reply rows.

    Remembered per instant: a batch's messages share a send time and a
    handful of receive times, and ``strftime`` was most of a status page's cost.
    """
    text = _SLASH_CACHE.get(ts)
    if text is None:
        if len(_SLASH_CACHE) >= _SLASH_CACHE_SIZE:
            _SLASH_CACHE.clear()
        text = _SLASH_CACHE[ts] = datetime.fromtimestamp(ts, TAIPEI).strftime("%Y/%m/%d %H:%M:%S")
    return text


def taipei_compact(ts: float) -> str:
    """``yyyyMMddHHmmss`` Taipei, the format of ST and of push RT."""
    return datetime.fromtimestamp(ts, TAIPEI).strftime("%Y%m%d%H%M%S")


def iso_utc(ts: float | None) -> str | None:
    """ISO-8601 UTC for the control API (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def parse_iso(text: str) -> float:
    """ISO-8601 with an offset (``Z`` allowed) to epoch seconds."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("an ISO-8601 time with an offset is required")
    return moment.timestamp()


def normalize_mobile(raw: str) -> str:
    """E.164 form of a number as the gateway accepts it, else -306.

    Deliberately simple (``09xxxxxxxx`` or ``+`` and 8-15 digits): the sandbox
    must refuse what the real gateway refuses, not guess like phonenumbers.
    """
    if _MOBILE_TW.fullmatch(raw):
        return "+886" + raw[1:]
    if _MOBILE_E164.fullmatch(raw):
        return raw
    raise error(-306, raw)


_POINTS_CACHE: dict[Decimal, str] = {}


def points_text(points: Decimal) -> str:
    """Points with one decimal, as in COST and status rows (``1.0``); a message costs one of a few values."""
    text = _POINTS_CACHE.get(points)
    if text is None:
        if len(_POINTS_CACHE) >= 1024:
            _POINTS_CACHE.clear()
        text = _POINTS_CACHE[points] = f"{points:.1f}"
    return text


# ---------------------------------------------------------------- clock


class Clock:
    """Real time plus an offset, or frozen; the only source of "now"."""

    def __init__(self, frozen: bool = False) -> None:
        self.offset = 0.0
        self.frozen_at: float | None = float(int(time.time())) if frozen else None

    def now(self) -> float:
        if self.frozen_at is not None:
            return self.frozen_at
        return time.time() + self.offset

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    def advance(self, seconds: float) -> None:
        if self.frozen_at is not None:
            self.frozen_at += seconds
        else:
            self.offset += seconds

    def set(self, ts: float) -> None:
        if self.frozen_at is not None:
            self.frozen_at = ts
        else:
            self.offset = ts - time.time()

    def freeze(self, frozen: bool) -> None:
        if frozen and self.frozen_at is None:
            self.frozen_at = self.now()
        elif not frozen and self.frozen_at is not None:
            self.offset = self.frozen_at - time.time()
            self.frozen_at = None


# ---------------------------------------------------------------- model


@dataclass
class PushConfig:
    """Where and how an account's status and reply pushes are delivered."""

    url: str
    duplicates: int = 0
    reorder: bool = False
    retry_delay: float = 0.05
    attempts: int = 10
    timeout: float = 5.0


@dataclass
class Account:
    uid: str
    pwd: str
    credit: Decimal
    international: bool = False
    status_columns: int = 6
    empty_status_newline: bool = True
    push: PushConfig | None = None
    # (text, E.164) -> SMS messages with that text, for the filter endpoint.
    recent: dict[tuple[str, str], list[Message]] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict:
        return {
            "uid": self.uid,
            "pwd": self.pwd,
            "credit": f"{self.credit:.2f}",
            "international": self.international,
            "status_columns": self.status_columns,
            "empty_status_newline": self.empty_status_newline,
            "push": None if self.push is None else vars(self.push),
        }


@dataclass
class Batch:
    id: str
    kind: str  # "sms" or "mms"
    uid: str
    endpoint: str
    subject: str
    created_at: float
    messages: list[Message] = field(default_factory=list, repr=False)
    replies: list[Reply] = field(default_factory=list, repr=False)
    filtered: list[str] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    sended: int = 0
    unsend: int = 0

    def as_json(self) -> dict:
        return {
            "batch_id": self.id,
            "kind": self.kind,
            "uid": self.uid,
            "endpoint": self.endpoint,
            "subject": self.subject,
            "created_at": iso_utc(self.created_at),
            "count": len(self.messages),
            "sended": self.sended,
            "unsend": self.unsend,
            "cost": points_text(self.cost),
            "filtered": self.filtered,
            "replies": len(self.replies),
        }


class Message:
    """One recipient of a batch; its status is derived, never stored.

    ``row``/``row_key`` cache the message's status-listing line (see
    ``gateway.status_line``): the line only changes when the clock crosses
    ``send_at`` or ``final_at``, when the state's ``version`` moves (outcome
    rules changed) or when the message itself changes (``invalidate``).
    """

    __slots__ = (
        "batch",
        "cancelled_at",
        "email",
        "expires_at",
        "final_at",
        "fixed_status",
        "id",
        "last_pushed",
        "mobile",
        "mr",
        "name",
        "points",
        "row",
        "row_key",
        "send_at",
        "text",
    )

    def __init__(self, id, batch, mobile, name, text, mr, email, points, send_at, final_at, expires_at):
        self.id = id
        self.batch = batch
        self.mobile = mobile
        self.name = name
        self.text = text
        self.mr = mr
        self.email = email
        self.points = points
        self.send_at = send_at
        self.final_at = final_at
        self.expires_at = expires_at
        self.fixed_status: int | None = None
        self.cancelled_at: float | None = None
        self.last_pushed: int | None = None
        self.row: str | None = None
        self.row_key: int = -1

    def invalidate(self) -> None:
        """Forget the cached listing line after changing the message."""
        self.row_key = -1


@dataclass
class Reply:
    mobile: str
    name: str
    text: str
    at: float


@dataclass
class Recipient:
    """A validated recipient, ready to become a message."""

    raw: str  # the number as the caller wrote it (filter answers echo it)
    mobile: str  # E.164
    text: str
    name: str = ""
    mr: str = ""
    email: str = ""
    send_at: float | None = None  # None = the batch's time


@dataclass
class SendResult:
    batch: Batch
    credit: Decimal


@dataclass
class Notification:
    """Something to push: a status change (``text`` None) or a reply."""

    batch: Batch
    message: Message | None
    mobile: str
    name: str
    status: int
    at: float
    text: str = ""


# ---------------------------------------------------------------- sandbox


class SandboxState:
    """Accounts, batches and the clock of one sandbox gateway."""

    def __init__(self, default_account: dict, *, frozen_clock: bool = False) -> None:
        self._default_account = dict(default_account)
        self._frozen_default = frozen_clock
        self.reset()

    def reset(self) -> None:
        self.clock = Clock(frozen=self._frozen_default)
        self.accounts: dict[str, Account] = {}
        self.batches: dict[str, Batch] = {}
        self.version = getattr(self, "version", 0) + 1
        self.outcomes = {}
        self.outbox: list[Notification] = []
        self._events: list[tuple[float, int, Message]] = []
        self._seq = 0
        self.put_account(**self._default_account)

    # -- accounts

    def put_account(
        self,
        uid: str,
        pwd: str,
        credit=0,
        international: bool = False,
        status_columns: int = 6,
        empty_status_newline: bool = True,
    ) -> Account:
        if status_columns not in (5, 6):
            raise ValueError("status_columns must be 5 or 6")
        old = self.accounts.get(uid)
        account = Account(
            uid=uid,
            pwd=pwd,
            credit=Decimal(str(credit)),
            international=bool(international),
            status_columns=int(status_columns),
            empty_status_newline=bool(empty_status_newline),
            push=old.push if old else None,
        )
        self.accounts[uid] = account
        return account

    def authenticate(self, uid: str, pwd: str) -> Account:
        if not uid and not pwd:
            raise error(-300)
        account = self.accounts.get(uid)
        if account is None:
            raise error(-100)
        if account.pwd != pwd:
            raise error(-101)
        return account

    # -- status

    @property
    def outcomes(self) -> dict[str, int]:
        """Final statuses by number suffix (longest match wins); assign a new dict to change them."""
        return self._outcomes

    @outcomes.setter
    def outcomes(self, rules: dict[str, int]) -> None:
        self._outcomes = rules
        self.version += 1  # every cached listing line may be stale now

    def outcome(self, mobile: str) -> int:
        best, best_len = DELIVERED, 0
        for suffix, status in self.outcomes.items():
            if len(suffix) > best_len and mobile.endswith(suffix):
                best, best_len = status, len(suffix)
        if best_len:
            return best
        return DEFAULT_OUTCOMES.get(mobile[-2:], DELIVERED)

    def status(self, m: Message, now: float) -> int:
        if m.fixed_status is not None:
            return m.fixed_status
        if m.cancelled_at is not None:
            return CANCELLED
        if now < m.send_at:
            return SCHEDULED
        if now < m.final_at:
            return SENT
        if m.batch.kind == "mms":
            return MMS_SENT
        if m.final_at > m.expires_at:
            return EXPIRED
        return self.outcome(m.mobile)

    def received_at(self, m: Message, now: float) -> float | None:
        if m.batch.kind == "sms" and self.status(m, now) == DELIVERED:
            return m.final_at
        return None

    # -- sending

    def filter_recent(
        self, account: Account, recipients: list[Recipient]
    ) -> tuple[list[Recipient], list[str]]:
        """Split recipients into (to send, raw numbers filtered as recent duplicates).

        A number is filtered when it got the same text, by any SMS endpoint of
        this account, within the last 24 h of sandbox time and that message
        was not refused (301/500) or cancelled (303); a number repeated inside
        the same request is filtered too.
        """
        now = self.clock.now()
        kept, filtered, seen = [], [], set()
        for r in recipients:
            key = (r.text, r.mobile)
            recent = account.recent.get(key, ())
            if key in seen or any(
                now - m.batch.created_at < FILTER_WINDOW_SECONDS
                and self.status(m, now) not in (NO_CREDIT, NO_INTERNATIONAL, CANCELLED)
                for m in recent
            ):
                filtered.append(r.raw)
            else:
                kept.append(r)
            seen.add(key)
        return kept, filtered

    def send(
        self,
        account: Account,
        *,
        kind: str,
        endpoint: str,
        subject: str,
        recipients: list[Recipient],
        send_at: float | None,
        retry_minutes: int,
        points: Callable[[str, bool], Decimal],
        filtered: Iterable[str] = (),
    ) -> SendResult:
        """Create a batch and charge it at once, also when it is scheduled.

        ``points(text, international)`` prices one message.  Messages that do
        not fit in the credit are kept with status 301 and no charge;
        international numbers without the account option (and every
        international MMS) get 500 and no charge.
        """
        now = self.clock.now()
        batch = Batch(
            id=str(uuid.uuid4()),
            kind=kind,
            uid=account.uid,
            endpoint=endpoint,
            subject=subject,
            created_at=now,
            filtered=list(filtered),
        )
        self.batches[batch.id] = batch
        validity = retry_minutes * 60
        zero = Decimal(0)
        credit = account.credit
        events = self._events
        for index, r in enumerate(recipients):
            at = r.send_at if r.send_at is not None else send_at
            at = now if at is None or at < now else at
            delay = MIN_DELAY_SECONDS + zlib.crc32(f"{batch.id}:{index}".encode()) % (
                MAX_DELAY_SECONDS - MIN_DELAY_SECONDS + 1
            )
            self._seq += 1
            m = Message(
                self._seq, batch, r.mobile, r.name, r.text, r.mr, r.email, zero, at, at + delay, at + validity
            )
            international = not r.mobile.startswith("+886")
            if international and (kind == "mms" or not account.international):
                m.fixed_status = NO_INTERNATIONAL
            else:
                price = points(r.text, international)
                if price <= credit:
                    credit -= price
                    m.points = price
                    batch.cost += price
                    batch.sended += 1
                else:
                    m.fixed_status = NO_CREDIT
                    batch.unsend += 1
            batch.messages.append(m)
            if m.fixed_status is not None:
                heapq.heappush(events, (now, m.id, m))
            else:
                heapq.heappush(events, (m.send_at, m.id, m))
                heapq.heappush(events, (m.final_at, m.id, m))
            if kind == "sms":
                account.recent.setdefault((r.text, r.mobile), []).append(m)
        account.credit = credit
        return SendResult(batch=batch, credit=credit)

    # -- queries

    def batch_of(self, account: Account, batch_id: str, kind: str) -> Batch | None:
        """The account's batch of that kind, or None (as unknown to the gateway)."""
        batch = self.batches.get(batch_id)
        if batch is None or batch.uid != account.uid or batch.kind != kind:
            return None
        return batch

    def erase(self, account: Account, batch_id: str, kind: str) -> tuple[int, Decimal] | None:
        """Cancel what is still scheduled and refund it; None when the batch is unknown."""
        batch = self.batch_of(account, batch_id, kind)
        if batch is None:
            return None
        now = self.clock.now()
        count, refund = 0, Decimal(0)
        for m in batch.messages:
            if self.status(m, now) == SCHEDULED:
                m.cancelled_at = now
                refund += m.points
                m.points = Decimal(0)
                m.invalidate()
                count += 1
                self._notify(m, CANCELLED, now)
        if not count:
            raise error(-4)
        account.credit += refund
        batch.cost -= refund
        return count, refund

    def add_reply(self, batch_id: str, mobile: str, text: str, at: float | None = None) -> Reply:
        batch = self.batches[batch_id]
        at = self.clock.now() if at is None else at
        message = next((m for m in batch.messages if m.mobile == mobile), None)
        reply = Reply(mobile=mobile, name=message.name if message else "", text=text, at=at)
        batch.replies.append(reply)
        self.outbox.append(Notification(batch, message, mobile, reply.name, REPLY, at, text))
        return reply

    # -- pushes

    def _notify(self, m: Message, status: int, at: float) -> None:
        m.last_pushed = status
        self.outbox.append(Notification(m.batch, m, m.mobile, m.name, status, at))

    def collect(self) -> list[Notification]:
        """Status changes due by now plus queued ones, oldest first; empties the outbox."""
        now = self.clock.now()
        events = self._events
        while events and events[0][0] <= now:
            at, _, m = heapq.heappop(events)
            status = self.status(m, at)
            if status != m.last_pushed:
                self._notify(m, status, at)
        out, self.outbox = self.outbox, []
        return out

    def message_json(self, m: Message, now: float) -> dict:
        received = self.received_at(m, now)
        return {
            "id": m.id,
            "batch_id": m.batch.id,
            "kind": m.batch.kind,
            "uid": m.batch.uid,
            "mobile": m.mobile,
            "name": m.name,
            "text": m.text,
            "subject": m.batch.subject,
            "mr": m.mr,
            "email": m.email,
            "points": points_text(m.points),
            "status": self.status(m, now),
            "send_at": iso_utc(m.send_at),
            "final_at": iso_utc(m.final_at),
            "received_at": iso_utc(received),
            "cancelled": m.cancelled_at is not None,
        }
