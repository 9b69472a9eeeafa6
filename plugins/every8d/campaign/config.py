"""Everything that defines a campaign's plan, checked before any row is read.

One frozen object so the operator, the runner and the tests agree on
defaults, and so a fingerprint can tell whether a retried task still asks
for the plan the ledger holds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from every8d.campaign.audience import ColumnMap
from every8d.campaign.plan import DEDUPE_COLUMNS, DEFAULT_CHUNK_SIZE, DEFAULT_MIN_GROUP_SIZE
from every8d.campaign.schedule import DEFAULT_ZONE, QuietHours
from every8d.campaign.templating import TemplateSet
from every8d.client.v21.mms import check_mms_image, check_mms_subject
from every8d.pricing import mms_points

Kind = Literal["sms", "mms"]
MAX_CHUNK_SIZE = 5000


@dataclass(frozen=True)
class CampaignSpec:
    """A campaign's message, audience mapping and rules (see docs/campaigns.md for each field)."""

    kind: Kind
    message: str | Mapping[str, str]
    columns: ColumnMap = field(default_factory=ColumnMap)
    fields: Mapping[str, str] | None = None
    subject: str = ""
    schedule_at: datetime | None = None
    validity_minutes: int | None = None
    region: str = "TW"
    allow_international: bool = False
    require_mobile: bool = True
    dedupe_on: tuple[str, ...] = ("mobile",)
    apply_suppressions: bool = True
    quiet_hours: str | None = None
    quiet_hours_policy: str = "reschedule"
    quiet_hours_timezone: str = DEFAULT_ZONE
    send_time_zone: str = DEFAULT_ZONE
    chunk_size: int = DEFAULT_CHUNK_SIZE
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    image: bytes | None = field(default=None, repr=False)
    image_type: str | None = None

    def templates(self) -> TemplateSet:
        return TemplateSet(self.message, template_column=self.columns.template, fields=self.fields)

    def quiet(self) -> QuietHours | None:
        if not self.quiet_hours:
            return None
        return QuietHours.parse(self.quiet_hours, self.quiet_hours_timezone, self.quiet_hours_policy)

    def _largest_text(self) -> str:
        """The message, or the template weighing most in UTF-8 bytes (what an MMS is priced by)."""
        if isinstance(self.message, str):
            return self.message
        return max(self.message.values(), key=lambda text: len(text.encode("utf-8")), default="")

    def mms_points(self) -> Decimal | None:
        return (
            mms_points(len(self.image), self._largest_text())
            if self.kind == "mms" and self.image is not None
            else None
        )

    def validate(self) -> None:
        """Raise ``ValueError`` (or a subclass) naming the first bad setting; reads no data."""
        if self.kind not in ("sms", "mms"):
            raise ValueError(f"kind must be 'sms' or 'mms', not {self.kind!r}")
        self.templates()
        self.quiet()
        if self.schedule_at is not None and (
            self.schedule_at.tzinfo is None or self.schedule_at.utcoffset() is None
        ):
            raise ValueError("schedule_at must be timezone-aware (e.g. 2026-05-01T09:00:00+08:00)")
        if self.validity_minutes is not None and not 0 < int(self.validity_minutes) <= 1440 * 7:
            raise ValueError("validity_minutes must be between 1 and 10080")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}")
        if self.min_group_size < 1:
            raise ValueError("min_group_size must be at least 1")
        if not self.dedupe_on or any(c not in DEDUPE_COLUMNS for c in self.dedupe_on):
            raise ValueError(
                f"dedupe_on must name some of {list(DEDUPE_COLUMNS)}, not {list(self.dedupe_on)}"
            )
        if "recipient_key" in self.dedupe_on and not self.columns.record_key:
            raise ValueError("dedupe_on names recipient_key but no record_key_column is mapped")
        if self.kind == "mms":
            if self.image is None:
                raise ValueError("an MMS campaign needs an image (jpg, png or gif up to 300 KB)")
            check_mms_image(self.image, self.image_type)
            check_mms_subject(self.subject)

    def fingerprint(self) -> str:
        """A hash of every setting that shapes the plan (the image by its hash)."""
        settings: dict[str, Any] = {
            "kind": self.kind,
            "message": dict(self.message) if isinstance(self.message, Mapping) else self.message,
            "columns": vars(self.columns),
            "fields": dict(self.fields or {}),
            "subject": self.subject,
            "schedule_at": self.schedule_at.isoformat() if self.schedule_at else None,
            "validity_minutes": self.validity_minutes,
            "region": self.region,
            "allow_international": self.allow_international,
            "require_mobile": self.require_mobile,
            "dedupe_on": list(self.dedupe_on),
            "apply_suppressions": self.apply_suppressions,
            "quiet_hours": [self.quiet_hours, self.quiet_hours_policy, self.quiet_hours_timezone],
            "send_time_zone": self.send_time_zone,
            "chunk_size": self.chunk_size,
            "min_group_size": self.min_group_size,
            "image": hashlib.sha256(self.image).hexdigest() if self.image else None,
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
