"""A thin Python wrapper of the sandbox's ``/_sandbox`` control API.

Tests read better as ``sandbox.advance(60)`` than as hand-built requests, and
one place knows the control API's paths.  Gateway calls are *not* wrapped
here: that is the hook's job, and tests of the hook must go through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import requests


class SandboxClient:
    """Steer a running sandbox gateway.

    :param base_url: the gateway's base URL, path prefix included (the control
        API answers under any prefix, like the gateway endpoints).
    :param uid: UID of the sandbox's default account (for :meth:`connection_json`).
    :param pwd: its PWD.
    """

    def __init__(
        self, base_url: str, *, uid: str = "demo", pwd: str = "secret", timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.uid = uid
        self.pwd = pwd
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # never send loopback traffic to an environment proxy

    # ------------------------------------------------------------ plumbing

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}/_sandbox/{path}",
            json=json_body,
            params=params,
            timeout=timeout or self.timeout,
        )
        if response.status_code not in ok:
            raise RuntimeError(f"sandbox {method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json()

    def url(self, endpoint: str) -> str:
        """Full URL of a gateway endpoint, e.g. ``url("sendSMS")`` or ``url("MMS/sendMMS")``."""
        return f"{self.base_url}/API21/HTTP/{endpoint}.ashx"

    def connection_json(self) -> str:
        """``AIRFLOW_CONN_EVERY8D_DEFAULT`` value pointing Airflow at this sandbox."""
        return json.dumps(
            {"conn_type": "every8d", "host": self.base_url, "login": self.uid, "password": self.pwd}
        )

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------ state

    def health(self) -> dict:
        return self._call("GET", "health")

    def reset(self) -> None:
        """Forget accounts, batches, faults, pushes and recorded requests."""
        self._call("POST", "reset")

    def create_account(
        self,
        uid: str,
        pwd: str,
        credit: float | str = 0,
        *,
        international: bool = False,
        status_columns: int = 6,
        empty_status_newline: bool = True,
    ) -> dict:
        return self._call(
            "POST",
            "accounts",
            json_body={
                "uid": uid,
                "pwd": pwd,
                "credit": str(credit),
                "international": international,
                "status_columns": status_columns,
                "empty_status_newline": empty_status_newline,
            },
        )

    def account(self, uid: str | None = None) -> dict:
        """An account as JSON; ``credit`` is a string with two decimals."""
        return self._call("GET", f"accounts/{uid or self.uid}")

    def set_outcomes(self, outcomes: Mapping[str, int] | None = None, **by_suffix: int) -> dict:
        """Final SMS status by number suffix, e.g. ``{"1234": 103}``; replaces earlier overrides."""
        rules = {**(outcomes or {}), **by_suffix}
        return self._call("POST", "outcomes", json_body={str(k): int(v) for k, v in rules.items()})

    # ------------------------------------------------------------ clock

    def clock(self) -> dict:
        return self._call("GET", "clock")

    def now(self) -> datetime:
        return datetime.fromisoformat(self.clock()["now"])

    def advance(self, seconds: float) -> dict:
        """Move the sandbox clock forward; due status changes are computed and pushed."""
        return self._call("POST", "clock", json_body={"advance": seconds})

    def set_clock(self, when: datetime | str) -> dict:
        """Set the clock to an aware datetime (or ISO-8601 text with an offset)."""
        value = when.isoformat() if isinstance(when, datetime) else when
        return self._call("POST", "clock", json_body={"set": value})

    def freeze(self, frozen: bool = True) -> dict:
        return self._call("POST", "clock", json_body={"freeze": frozen})

    # ------------------------------------------------------------ faults

    def inject_fault(self, endpoint: str, kind: str, **options: Any) -> list[dict]:
        """Arm a fault; options: count, delay, retry_after, code, message, execute, status, at, rows,
        location, page.

        ``body`` serves ``message`` verbatim (with ``status``); ``cut`` executes the request and
        serves its real answer cut to ``at`` bytes (negative: minus that many), to ``rows`` lines
        (the count line is the first), or to ``rows`` lines plus ``at`` bytes of the next (inside a
        row); ``redirect`` answers ``status`` (default 302) with a Location under ``location``;
        ``trickle`` executes and serves the real answer one byte every ``delay`` seconds; ``echo``
        answers ``status`` (default 500) with an error page repeating the request, body included
        (``message``, if given, replaces the HTML with a plain-text prefix).  ``page`` limits the
        fault to requests for that ``PNO``.
        """
        return self._call("POST", "faults", json_body={"endpoint": endpoint, "kind": kind, **options})

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    # ------------------------------------------------------------ what happened

    def requests(self) -> list[dict]:
        """Every gateway request received: method, path, query_string, headers, body."""
        return self._call("GET", "requests")

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def set_recording(self, enabled: bool) -> None:
        self._call("POST", "record", json_body={"enabled": enabled})

    def iter_messages(self, batch_id: str | None = None, uid: str | None = None) -> Iterator[dict]:
        """Stream messages (one dict each, status as of the sandbox's now)."""
        params = {k: v for k, v in (("batch_id", batch_id), ("uid", uid)) if v}
        with self.session.get(
            f"{self.base_url}/_sandbox/messages", params=params, stream=True, timeout=self.timeout
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)

    def messages(self, batch_id: str | None = None, uid: str | None = None) -> list[dict]:
        return list(self.iter_messages(batch_id, uid))

    def batches(self, uid: str | None = None) -> list[dict]:
        return self._call("GET", "batches", params={"uid": uid} if uid else None)

    def add_reply(self, batch_id: str, mobile: str, text: str, at: datetime | str | None = None) -> dict:
        """Inject a reply to a batch (pushed with STATUS=999)."""
        body = {"batch_id": batch_id, "mobile": mobile, "text": text}
        if at is not None:
            body["at"] = at.isoformat() if isinstance(at, datetime) else at
        return self._call("POST", "replies", json_body=body)

    # ------------------------------------------------------------ pushes

    def set_push(
        self,
        url: str | None,
        *,
        uid: str | None = None,
        duplicates: int = 0,
        reorder: bool = False,
        retry_delay: float = 0.05,
        concurrency: int = 8,
        attempts: int = 10,
        timeout: float = 5.0,
    ) -> dict:
        """Send status and reply pushes of ``uid`` (default account) to ``url``; None turns them off."""
        return self._call(
            "POST",
            "push",
            json_body={
                "uid": uid or self.uid,
                "url": url,
                "duplicates": duplicates,
                "reorder": reorder,
                "retry_delay": retry_delay,
                "concurrency": concurrency,
                "attempts": attempts,
                "timeout": timeout,
            },
        )

    def pushes(self) -> list[dict]:
        """Every push attempt: push_id, attempt, url, params, status (or None), error."""
        return self._call("GET", "pushes")

    def drain_pushes(self, timeout: float = 10.0) -> bool:
        """Push what is due and wait until every delivery finished (or gave up)."""
        result = self._call(
            "POST", "pushes/drain", params={"timeout": timeout}, timeout=timeout + 10, ok=(200, 408)
        )
        return bool(result["drained"])

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
