"""One validated push, and the keys that make duplicates harmless.

The gateway retries a push up to ten times and reorders them, so the same
event arrives more than once.  The event key is a hash of what the gateway
says happened — batch, number, MR, status, report time, text — not of when we
heard it, so every copy of one push gets one key and is counted once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

REPLY_STATUS = 999
_SEP = "\x1f"  # unit separator: cannot occur in validated fields, so fields never run together


def _digest(*parts: str) -> str:
    return hashlib.sha256(_SEP.join(parts).encode("utf-8")).hexdigest()[:32]


def event_key(batch_id: str, mobile: str, mr: str, status: int, rt: str, sm: str) -> str:
    """Key of a push: 128 bits of SHA-256 over (batch id, E.164 mobile, MR, status, RT text, SM).

    ``rt`` is the gateway's ``yyyyMMddHHmmss`` text (validated to exactly 14
    digits, so one instant has one spelling); ``mobile`` is E.164, so ``09…``
    and ``+8869…`` spellings of a number share a key.
    """
    return _digest("push.v1", batch_id, mobile, mr, str(status), rt, sm)


@dataclass(frozen=True)
class PushEvent:
    """A push that passed validation, ready for the journal.

    :param reported_at: the gateway's RT as an aware UTC datetime.
    :param received_at: when this receiver got it (UTC).
    :param text: SM as sent (a reply's text when ``status`` is 999).
    :param extra: keys we do not model (ST, CHARGE, NAME, MSGID, ...), kept verbatim.
    """

    batch_id: str
    mobile: str
    mr: str
    status: int
    rt: str
    reported_at: datetime
    received_at: datetime
    text: str
    user_id: str
    extra: dict[str, str] = field(default_factory=dict)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "key", event_key(self.batch_id, self.mobile, self.mr, self.status, self.rt, self.text)
        )

    @property
    def is_reply(self) -> bool:
        return self.status == REPLY_STATUS
