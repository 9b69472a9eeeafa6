"""The gateway's delivery status codes: what each means, and whether it can still change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
    StatusInfo(
        500, "not sent: international SMS not enabled", "未開通國際簡訊，無法發送國際簡訊", "failed", True
    ),
    StatusInfo(700, "MMS sent", "MMS 已發送", "delivered", True),
    StatusInfo(888, "test mode, not sent", "測試模式", "test", True),
    StatusInfo(999, "a reply from the recipient", "回覆簡訊", "reply", True),
    StatusInfo(-1, "parameter error", "參數錯誤", "failed", True),
    StatusInfo(-2, "bad credentials", "帳號或密碼錯誤", "failed", True),
    StatusInfo(-3, "invalid or blacklisted number", "無效門號", "failed", True),
    StatusInfo(
        -4, "schedule time expired more than 24 hours ago", "預計發送時間已過去 24 小時以上", "expired", True
    ),
    StatusInfo(-5, "content too long", "內容過長", "failed", True),
    StatusInfo(-6, "bad time format", "時間格式錯誤", "failed", True),
]
STATUS_CODES: dict[int, StatusInfo] = {info.code: info for info in _STATUSES}


def status_info(code: int) -> StatusInfo:
    """The table entry for a delivery status code; unknown codes are pending, not final."""
    return STATUS_CODES.get(code) or StatusInfo(code, f"unknown status {code}", "", "pending", False)
