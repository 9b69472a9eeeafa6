"""The receiver's state: settings (or why there are none), the gate checks and the recorder.

Kept apart from the FastAPI objects so the checks read as plain functions:
who may push (network allowlist, token), and "recorded or not" as the only
thing a push waits for.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from every8d.callbacks.events import PushEvent
from every8d.callbacks.params import PushRejected
from every8d.callbacks.recorder import Recorder
from every8d.callbacks.settings import PushSettings

NOT_RECORDED = "the push could not be recorded; the gateway should retry"


@lru_cache(maxsize=4096)
def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class PushReceiver:
    """Everything a push request needs besides its own parameters.

    :param settings: the checked settings, or None when the receiver is not configured.
    :param config_error: why it is not configured (shown in the 503 body; never holds a secret).
    """

    def __init__(self, settings: PushSettings | None, config_error: str | None = None) -> None:
        self.settings = settings
        self.config_error = config_error
        self.recorder = (
            Recorder(
                settings.journal_path,
                busy_timeout=settings.busy_timeout,
                record_timeout=settings.record_timeout,
            )
            if settings is not None
            else None
        )

    @property
    def configured(self) -> bool:
        return self.settings is not None

    def require_settings(self) -> PushSettings:
        if self.settings is None:
            raise PushRejected(
                503, "not_configured", f"the push receiver is not configured: {self.config_error}"
            )
        return self.settings

    def check_client(self, host: str | None) -> None:
        """403 unless the client address is inside an allowed network (no allowlist: everyone)."""
        networks = self.require_settings().allowed_networks
        if not networks:
            return
        address = _address(host) if host else None
        if address is None or not any(address in network for network in networks):
            raise PushRejected(403, "forbidden", "this client address may not push")

    def check_token(self, values: list[bytes]) -> None:
        """401 unless exactly one ``token`` was given and it equals a configured one (constant time)."""
        settings = self.require_settings()
        if len(values) != 1:
            raise PushRejected(401, "unauthorized", "a valid token query parameter is required")
        given = values[0]
        # Compare against every token, without stopping early, so timing says nothing about which.
        matches = [hmac.compare_digest(given, expected) for expected in settings.token_bytes]
        if not any(matches):
            raise PushRejected(401, "unauthorized", "a valid token query parameter is required")

    async def record(self, event: PushEvent) -> bool:
        """Wait until ``event`` is durably journaled; True if new, False for a duplicate; 503 otherwise."""
        self.require_settings()
        assert self.recorder is not None
        try:
            return await self.recorder.record(event)
        except Exception:  # a write error or a timeout: answer 503 so the gateway retries
            raise PushRejected(503, "not_recorded", NOT_RECORDED) from None

    async def aclose(self) -> None:
        """Write what is pending, then close the journal (at shutdown)."""
        if self.recorder is not None:
            await self.recorder.aclose()
