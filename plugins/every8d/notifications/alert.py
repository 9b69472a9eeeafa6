"""What an Airflow callback is about, read from its context: pure, no I/O.

One :class:`Alert` describes the event a notifier was called for (a task try
that failed, a DAG run that succeeded, a missed deadline).  Its :attr:`Alert.key`
names that event exactly once, so the ledger can refuse a second send for the
same try however many times, and wherever, the callback runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from every8d.pricing import MAX_LONG_SMS_CHARS, SINGLE_SMS_CHARS, sms_length

EXCEPTION_SUMMARY_CHARS = 120
ELLIPSIS = "…"


@dataclass(frozen=True)
class Alert:
    """The facts of one callback, as templates see them (``{{ alert.dag_id }}``...).

    :param scope: ``task``, ``dag`` or ``deadline``: which kind of callback ran.
    :param event: ``failed``, ``up_for_retry``, ``success``, ``deadline_missed``...
    :param try_number: the task try (task scope); 0 when there is none.
    :param attempt: what makes a repeat of the same scope distinct: the try for a
        task, the run's clear number for a DAG run, the deadline id for a deadline.
    :param exception: one-line summary ``Type: first line of the message``.
    """

    scope: str
    event: str
    dag_id: str
    run_id: str = ""
    task_id: str = ""
    map_index: int = -1
    try_number: int = 0
    attempt: str = ""
    log_url: str = ""
    exception: str = ""
    reason: str = ""

    @property
    def key(self) -> str:
        """Stable id of this event: the same task try always gives the same key."""
        parts = (
            self.scope,
            self.dag_id,
            self.task_id,
            self.run_id,
            str(self.map_index),
            self.attempt,
            self.event,
        )
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()

    @property
    def where(self) -> str:
        """``dag.task[map] try N`` for logs (no numbers, no message text)."""
        text = self.dag_id + (f".{self.task_id}" if self.task_id else "")
        if self.map_index >= 0:
            text += f"[{self.map_index}]"
        if self.try_number:
            text += f" try {self.try_number}"
        return f"{text} ({self.event})"


def summarize_exception(error: Any) -> str:
    """``ValueError: first line``, cut to a length that leaves room in an SMS."""
    if error is None:
        return ""
    if isinstance(error, BaseException):
        first = next(iter(str(error).strip().splitlines()), "")
        text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    else:
        text = next(iter(str(error).strip().splitlines()), "")
    return trim(text, EXCEPTION_SUMMARY_CHARS)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _state_name(state: Any) -> str:
    value = getattr(state, "value", state)
    return str(value).lower() if value else ""


def alert_from_context(context: Mapping[str, Any]) -> Alert:
    """Read an :class:`Alert` from a task, DAG or deadline callback's context.

    DAG callbacks carry ``reason`` (``success``, ``task_failure``...); deadline
    callbacks carry ``deadline`` and a JSON ``dag_run``; task callbacks carry ``ti``.
    """
    dag_run = context.get("dag_run")
    if context.get("deadline") is not None:
        deadline = context["deadline"]
        return Alert(
            scope="deadline",
            event="deadline_missed",
            dag_id=str(_get(dag_run, "dag_id", "")),
            run_id=str(_get(dag_run, "dag_run_id") or _get(dag_run, "run_id") or ""),
            attempt=str(_get(deadline, "id", "")),
            reason=f"due {_get(deadline, 'deadline_time')}" if _get(deadline, "deadline_time") else "",
        )
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = str(_get(dag, "dag_id") or _get(ti, "dag_id") or _get(dag_run, "dag_id") or "")
    run_id = str(context.get("run_id") or _get(ti, "run_id") or _get(dag_run, "run_id") or "")
    if "reason" in context:
        reason = str(context.get("reason") or "")
        event = "success" if reason == "success" else "failed"
        return Alert(
            scope="dag",
            event=event,
            dag_id=dag_id,
            run_id=run_id,
            attempt=str(_get(dag_run, "clear_number", 0) or 0),
            reason=reason.replace("_", " "),
            exception=summarize_exception(context.get("exception")),
        )
    try_number = int(_get(ti, "try_number", 0) or 0)
    exception = summarize_exception(context.get("exception"))
    event = _state_name(_get(ti, "state")) or ("failed" if exception else "notified")
    log_url = ""
    if ti is not None:
        try:
            log_url = str(ti.log_url)
        except Exception:  # a partial context (tests, older runners) has no log URL: not worth failing
            log_url = ""
    return Alert(
        scope="task",
        event=event,
        dag_id=dag_id,
        run_id=run_id,
        task_id=str(_get(ti, "task_id", "") or _get(context.get("task"), "task_id", "") or ""),
        map_index=int(_get(ti, "map_index") if _get(ti, "map_index") is not None else -1),
        try_number=try_number,
        attempt=str(try_number),
        log_url=log_url,
        exception=exception,
    )


def trim(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-16 code units (the gateway's count), ending in ``…`` when cut.

    Never splits a surrogate pair, so an emoji is kept whole or dropped.
    """
    if sms_length(text) <= limit:
        return text
    kept, used = [], 0
    for char in text:
        units = 2 if ord(char) > 0xFFFF else 1
        if used + units > limit - 1:
            break
        kept.append(char)
        used += units
    return "".join(kept).rstrip() + ELLIPSIS


def fit_message(text: str, *, allow_long: bool = False) -> str:
    """The alert text as sent: stripped, one SMS (70 characters) unless ``allow_long``.

    A long alert is still capped at 333 characters (5 points) so that a huge
    exception text cannot make one alert expensive.
    """
    text = str(text).strip()
    return trim(text, MAX_LONG_SMS_CHARS if allow_long else SINGLE_SMS_CHARS)
