"""``Every8dNotifier``: an SMS through EVERY8D from any DAG's callbacks.

Alerts matter most when things are already going wrong, so this notifier
never raises into Airflow's callback chain (a failed alert is logged with the
gateway's code and meaning), never sends one alert twice for the same task try
(a durable claim in :mod:`~every8d.notifications.ledger`), and caps how many
alerts one DAG can send per window so a flapping DAG cannot burn the credit.

Kept import-light: DAG files import it at parse time; the hook loads at send time.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.notifier import BaseNotifier

from every8d.hooks import DEFAULT_CONN_NAME
from every8d.notifications.alert import Alert, alert_from_context, fit_message
from every8d.notifications.ledger import FAILED, SENT, UNKNOWN, AlertLedger
from every8d.notifications.recipients import (
    RECIPIENTS_VARIABLE,
    load_named_lists,
    names_of,
    split_numbers,
)
from every8d.phones import send_numbers

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

DEFAULT_MESSAGE = (
    "{{ alert.event | replace('_', ' ') | upper }} {{ alert.dag_id }}"
    "{% if alert.task_id %}.{{ alert.task_id }}{% endif %}"
    "{% if alert.try_number %} try {{ alert.try_number }}{% endif %}"
    "{% if alert.exception %}: {{ alert.exception }}{% elif alert.reason %}: {{ alert.reason }}{% endif %}"
    " | {{ alert.run_id }}"
    "{% if alert.log_url %} {{ alert.log_url }}{% endif %}"
)
DEFAULT_RATE_LIMIT = 10
DEFAULT_RATE_WINDOW = timedelta(hours=1)


def _describe(error: BaseException) -> str:
    """A log line for an error: the gateway's code and meaning when there is one."""
    code = getattr(error, "code", None)
    meaning = getattr(error, "meaning", None)
    if code is not None and meaning is not None:
        return f"gateway code {code} ({meaning}) on {getattr(error, 'endpoint', 'the gateway')}"
    return f"{type(error).__name__}: {error}"


class Every8dNotifier(BaseNotifier):
    """Send an SMS alert through EVERY8D from ``on_failure_callback``, ``on_success_callback``,
    ``on_retry_callback`` (DAG or task level) or a deadline alert's callback.

    The message is a Jinja template with ``alert`` (an :class:`~every8d.notifications.alert.Alert`:
    ``dag_id``, ``task_id``, ``run_id``, ``try_number``, ``log_url``, ``exception``, ``event``...)
    next to the usual Airflow context.  It is cut to one SMS (70 characters) unless ``allow_long``.

    :param phones: numbers, as a list or one comma-separated string (templated).
    :param recipient_list: name(s) of lists in the Airflow Variable ``recipients_variable`` (templated).
    :param message: the text template; the default names the event, DAG, task, try, error, run and log URL.
    :param allow_long: allow up to 333 characters (several SMS, up to 5 points per number).
    :param every8d_conn_id: the EVERY8D connection to send with.
    :param recipients_variable: Variable holding ``{"list name": [numbers]}`` as JSON.
    :param rate_limit: at most this many alerts per DAG per ``rate_window``; None for no limit.
    :param rate_window: the rate limit's sliding window (a timedelta, or seconds).
    :param ledger: where claims are kept: ``sqlite:///path`` or ``airflow://<postgres conn id>``;
        default ``[every8d] alert_ledger`` or ``$AIRFLOW_HOME/every8d/alerts.sqlite3``.
    :param subject: the gateway's record note for the send (not shown on phones).
    :param context: Airflow's own notifier argument, passed to ``BaseNotifier`` as it is.
    """

    template_fields: Sequence[str] = ("message", "phones", "recipient_list")
    #: Always render text: an SMS is a string even in DAGs that render native objects.
    render_template_as_native_obj = False

    def __init__(
        self,
        *,
        phones: str | Iterable[str] | None = None,
        recipient_list: str | Iterable[str] | None = None,
        message: str = DEFAULT_MESSAGE,
        allow_long: bool = False,
        every8d_conn_id: str = DEFAULT_CONN_NAME,
        recipients_variable: str = RECIPIENTS_VARIABLE,
        rate_limit: int | None = DEFAULT_RATE_LIMIT,
        rate_window: timedelta | float = DEFAULT_RATE_WINDOW,
        ledger: str | None = None,
        subject: str = "Airflow alert",
        context: Context | None = None,
    ) -> None:
        super().__init__(context=context)
        if not phones and not recipient_list:
            raise ValueError("Every8dNotifier needs phones, a recipient_list, or both")
        if rate_limit is not None and rate_limit < 1:
            raise ValueError("rate_limit must be at least 1, or None for no limit")
        window = rate_window.total_seconds() if isinstance(rate_window, timedelta) else float(rate_window)
        if window <= 0:
            raise ValueError("rate_window must be positive")
        self.phones = phones if phones is None or isinstance(phones, str) else list(phones)
        self.recipient_list = (
            recipient_list
            if recipient_list is None or isinstance(recipient_list, str)
            else list(recipient_list)
        )
        self.message = message
        self.allow_long = allow_long
        self.every8d_conn_id = every8d_conn_id
        self.recipients_variable = recipients_variable
        self.rate_limit = rate_limit
        self.rate_window_seconds = window
        self.ledger = ledger
        self.subject = subject

    # -- entry points Airflow calls -------------------------------------------------------------

    def __call__(self, *args: Any) -> None:
        """Render and send for one callback; never raises.

        Renders a copy, because rendering replaces the templates in place and the
        same notifier object serves every try of every run in a worker or ``dag.test()``.
        """
        try:
            if len(args) == 1:
                context = dict(args[0] or {})
            else:
                context = {
                    "dag": args[0],
                    "task_list": args[1],
                    "blocking_task_list": args[2],
                    "blocking_tis": args[3],
                }
            context["alert"] = alert_from_context(context)
            rendered = copy.copy(self)
            rendered._update_context(context)  # type: ignore[arg-type]
            rendered.render_template_fields(context)  # type: ignore[arg-type]
        except Exception as error:
            self.log.error("EVERY8D alert not sent: it could not be prepared (%s)", _describe(error))
            return
        rendered.notify(context)  # type: ignore[arg-type]

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Use the DAG's Jinja environment when there is one.

        ``dag.test()`` hands DAG-level callbacks its serialized DAG, which has no
        template environment: fall back to Airflow's default sandboxed one.
        """
        if jinja_env is None and not hasattr(context.get("dag"), "get_template_env"):
            jinja_env = self.get_template_env()
        super().render_template_fields(context, jinja_env)

    def __await__(self):
        """Deadline alerts through ``AsyncCallback``: the same send, off the triggerer's event loop."""
        return asyncio.to_thread(self.__call__, self.context).__await__()

    def notify(self, context: Context) -> None:
        """Send the (already rendered) alert; log, never raise, when it cannot be sent."""
        alert = context.get("alert")
        if not isinstance(alert, Alert):
            alert = alert_from_context(context)
        try:
            self._deliver(alert)
        except Exception as error:
            self.log.error("EVERY8D alert for %s not sent: %s", alert.where, _describe(error))

    async def async_notify(self, context: Context) -> None:
        await asyncio.to_thread(self.notify, context)

    # -- the send ------------------------------------------------------------------------------

    def _recipients(self) -> list[str]:
        numbers = split_numbers(self.phones)
        numbers += load_named_lists(names_of(self.recipient_list), self.recipients_variable)
        # the send policy: a landline cannot take an SMS; international ones are the operator's choice
        valid, invalid = send_numbers(numbers, allow_international=True)
        if invalid:
            self.log.warning("EVERY8D alert: %d recipient(s) skipped, not valid mobile numbers", invalid)
        return valid

    def _deliver(self, alert: Alert) -> None:
        numbers = self._recipients()
        if not numbers:
            self.log.error("EVERY8D alert for %s not sent: no valid recipient", alert.where)
            return
        text = fit_message(self.message, allow_long=self.allow_long)
        if not text:
            self.log.error("EVERY8D alert for %s not sent: the message rendered empty", alert.where)
            return
        ledger = AlertLedger(self.ledger)
        admission = ledger.admit(
            alert.key, alert.dag_id, numbers, limit=self.rate_limit, window_seconds=self.rate_window_seconds
        )
        if admission.rate_limited:
            self.log.warning(
                "EVERY8D alert for %s suppressed: DAG %s already sent %d alert(s) "
                "in the last %d s (limit %s)",
                alert.where,
                alert.dag_id,
                admission.recent,
                self.rate_window_seconds,
                self.rate_limit,
            )
            return
        if not admission.numbers:
            self.log.info(
                "EVERY8D alert for %s already sent to its %d recipient(s): not sent again",
                alert.where,
                admission.already,
            )
            return
        self._send(ledger, alert, text, admission.numbers)

    def _send(self, ledger: AlertLedger, alert: Alert, text: str, numbers: list[str]) -> None:
        from every8d.errors import GatewayError, SendOutcomeUnknownError
        from every8d.hooks.every8d import Every8dHook

        hook = Every8dHook(self.every8d_conn_id)
        try:
            result = hook.send_sms(text, numbers, subject=self.subject)
        except GatewayError as error:
            ledger.settle(alert.key, numbers, FAILED, detail=f"{error.code} {error.meaning}")
            self.log.error("EVERY8D alert for %s not sent: %s", alert.where, _describe(error))
            return
        except SendOutcomeUnknownError as error:
            ledger.settle(alert.key, numbers, UNKNOWN, detail=error.reason)
            self.log.error(
                "EVERY8D alert for %s: outcome unknown (%s); not resent, so nobody gets it twice",
                alert.where,
                error.reason,
            )
            return
        except Exception as error:  # unreachable gateway, missing connection...: nothing was sent
            ledger.settle(alert.key, numbers, FAILED, detail=type(error).__name__)
            self.log.error("EVERY8D alert for %s not sent: %s", alert.where, _describe(error))
            return
        finally:
            hook.close()
        ledger.settle(alert.key, numbers, SENT, batch_id=result.batch_id)
        self.log.info(
            "EVERY8D alert for %s sent to %d number(s): batch %s, %s point(s)",
            alert.where,
            result.sent,
            result.batch_id,
            result.cost,
        )
        if result.unsent:
            self.log.warning(
                "EVERY8D alert for %s: %d message(s) not sent, no credit left", alert.where, result.unsent
            )


#: Function-style alias, as Airflow's own providers offer (``send_slack_notification``).
send_every8d_notification = Every8dNotifier
