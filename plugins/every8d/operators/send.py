"""Thin operators that send a campaign: SMS (``Every8dSendSmsOperator``) and MMS (``Every8dSendMmsOperator``).

They only turn (templated) arguments into a :class:`~every8d.campaign.config.CampaignSpec`
and :class:`~every8d.campaign.runner.RunOptions`, build the hook and the
warehouse at execute time, and hand over to :class:`~every8d.campaign.runner.CampaignRun`.
Every parameter is documented with an example in docs/campaigns.md.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from every8d.assets import BATCHES_ASSET
from every8d.hooks import DEFAULT_CONN_NAME
from every8d.settings import parse_bool

if TYPE_CHECKING:
    from airflow.sdk import Context

    from every8d.campaign.config import CampaignSpec


def as_bool(value: Any, name: str) -> bool:
    """Booleans survive Jinja as the strings ``"True"``/``"False"``: read them back."""
    try:
        return parse_bool(value)
    except ValueError:
        raise ValueError(f"{name} must be true or false, not {value!r}") from None


def as_decimal(value: Any, name: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{name} must be a positive number, not {value!r}")
    return number


def as_int(value: Any, name: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None


def as_datetime(value: Any, name: str) -> datetime | None:
    """An aware datetime from a datetime or ISO 8601 text; naive values are refused (no guessing zones)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{name} must be ISO 8601 with an offset, e.g. 2026-05-01T09:00:00+08:00"
            ) from None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (e.g. 2026-05-01T09:00:00+08:00)")
    return value


def describe(value: Any) -> str:
    """A short, number-free stand-in for a data object in rendered fields (the UI shows them)."""
    rows = getattr(value, "num_rows", None)
    if rows is None:
        try:
            rows = len(value)
        except TypeError:
            rows = None
    kind = type(value).__name__
    return f"<{kind} with {rows} rows>" if rows is not None else f"<{kind}>"


def call_loader(loader: Callable[..., Any], context: Context) -> Any:
    """Call an audience callable, passing ``context`` when it takes one."""
    try:
        parameters = inspect.signature(loader).parameters.values()
    except (TypeError, ValueError):
        return loader()
    if any(p.kind is p.VAR_KEYWORD or p.name == "context" for p in parameters):
        return loader(context=context)
    return loader()


def default_campaign_id(context: Context) -> str:
    """``dag_id.task_id.run_id`` (plus ``.map_index`` when mapped): the same for every try of a task
    instance."""
    ti = context["ti"]
    campaign = f"{ti.dag_id}.{ti.task_id}.{ti.run_id}"
    map_index = getattr(ti, "map_index", -1)
    if map_index is not None and map_index >= 0:
        campaign += f".{map_index}"
    return campaign


class Every8dSendSmsOperator(BaseOperator):
    """Send an SMS campaign to an audience, exactly once per recipient, with a durable ledger.

    The audience is one of: ``audience`` (a pandas DataFrame, an Arrow table, an
    upstream task's output, a callable returning one, or a Parquet/CSV path or
    ``ObjectStoragePath``), or ``sql`` on ``sql_conn_id``.  The message uses
    ``string.Template`` syntax: ``$name`` / ``${field}`` fill in audience
    columns, ``$$`` is a dollar sign.  Returns a small summary (counts and
    points) as XCom.  docs/campaigns.md has the same parameters with examples.

    :param message: one template, or ``{template_id: template}`` with ``template_column`` (JSON text of
        such a dict also works).
    :param audience: a pandas DataFrame or Arrow table, an upstream task's output (XComArg), a callable
        returning one (called at execute time, with ``context=`` if it takes it), or a Parquet / CSV path
        or ``ObjectStoragePath`` (``s3://...`` works with the matching fsspec package; a Parquet
        *directory* is read as a dataset).
    :param sql: a query on any common-sql connection, read in batches (Postgres: server-side cursor); its
        result columns are the audience's columns; ``.sql`` files are loaded as templates.
    :param sql_conn_id: connection for ``sql``.
    :param sql_parameters: query parameters in the driver's style.
    :param audience_format: ``parquet`` or ``csv`` when the path's suffix does not say.
    :param mobile_column: phone numbers, any format (``0912-345-678``, ``+886912345678``, integers).
    :param name_column: recipient name sent to the gateway (shows in status listings).
    :param record_key_column: your id for the recipient, kept in the ledger and rejects.
    :param send_at_column: per-row send time: timestamps, or ISO 8601 / ``yyyyMMddHHmmss`` text; naive
        values are read in ``send_time_zone``; past times mean "at once".
    :param template_column: with several templates, the column naming each row's template.
    :param fields: ``{placeholder: column}`` for columns whose names are not identifiers.
    :param subject: a note for the account's records (SMS); the MMS subject (MMS: 15 CJK / 95 ASCII
        characters).
    :param schedule_at: the campaign's send time: aware datetime or ISO 8601 with an offset; rows without
        their own time use it.
    :param validity_minutes: ``RETRYTIME``: how long the gateway keeps trying (1..10080).
    :param campaign_id: the unit of exactly-once; default ``dag_id.task_id.run_id`` (+ ``.map_index``),
        stable across retries of a task instance.
    :param estimate_only: plan, price and report; sends nothing and writes no ledger (reads the credit if
        it can). ``dry_run=`` is its deprecated old name (as an attribute it hid
        ``BaseOperator.dry_run()``).
    :param dry_run: deprecated name of ``estimate_only`` (it hid ``BaseOperator.dry_run()``).
    :param max_points: fail before the first send (no retry) when the estimate is above it.
    :param check_credit: stop before the first send when the account's credit (``getCredit``) does not
        cover the recipients still ``pending`` (in-doubt ones were most likely charged already and are not
        counted again). An "insufficient" verdict is read a second time first (a cut ``9600.00`` parses as
        ``960``); the failure is retry-safe, since the account can be topped up.
    :param region: region for numbers without a country code.
    :param allow_international: accept numbers outside ``region`` (priced ×3, must be enabled on the
        account); refused as ``international_not_allowed`` otherwise.
    :param require_mobile: refuse fixed-line numbers (``not_mobile``).
    :param dedupe_on: key(s) for removing duplicates, first row wins: ``mobile``, ``recipient_key``,
        ``text``, ``name``, ``template_id``; a (number, text) pair is never kept twice whatever the key.
    :param apply_suppressions: drop numbers in ``every8d_suppressions`` (opt-outs) as ``suppressed``.
    :param quiet_hours: a daily window with no sends, in ``quiet_hours_timezone`` (may cross midnight).
    :param quiet_hours_policy: ``reschedule`` (default): move such sends to the window's end; ``reject``:
        refuse those rows (``quiet_hours``), and refuse to start sending during the window.
    :param quiet_hours_timezone: zone of the window.
    :param send_time_zone: zone for naive per-row times.
    :param chunk_size: recipients per request (the vendor suggests 500–2000; at most 5000).
    :param min_group_size: a text shared by at least this many recipients goes as one multi-number
        ``sendSMS`` per chunk; other texts go through ``SendParamSMS`` with a per-recipient ``Mr``.
    :param concurrency: requests at a time (threads sharing the hook's pooled sessions).
    :param in_doubt: what to do with a chunk whose answer was lost: ``resend_filtered`` (default) or
        ``needs_review``.
    :param settle_seconds: before resolving a chunk whose answer was lost, wait this long after its last
        request was **written** (warehouse clock; default: the connection's connect timeout + 2 × read
        timeout).
    :param lease_seconds: how long one renewal of the campaign's lease holds; a crashed runner's retry
        takes over after it (default: 3 × (connect + read timeout), at least 30 s; must exceed one
        request's deadline).
    :param max_lost_answers: lost answers one try resolves itself (after the settle time) before it stops
        retry-safe: the gateway keeps losing them.
    :param rejects_path: also write every refused row (row number, reason, detail, key, raw and E.164
        number) as one Parquet file here; the same rows are always in ``every8d_send_rejects``.
    :param warehouse: where the ledger lives: ``duckdb:///abs/path.duckdb``, ``airflow://<conn_id>``;
        default ``[every8d] warehouse``, else ``$AIRFLOW_HOME/every8d/every8d.duckdb``.
    :param every8d_conn_id: the EVERY8D connection.
    :param batch_rows: rows per Arrow batch while reading and screening (memory vs. speed).
    :param plan_memory_limit: DuckDB memory cap while planning (it spills to a scratch folder above it).
    :param progress_every: log a progress line every N chunks: settled/total, points so far, rate, ETA
        (counts only).
    """

    kind = "sms"
    template_fields: Sequence[str] = (
        "audience",
        "sql",
        "sql_parameters",
        "sql_conn_id",
        "audience_format",
        "message",
        "subject",
        "schedule_at",
        "validity_minutes",
        "campaign_id",
        "estimate_only",
        "max_points",
        "check_credit",
        "mobile_column",
        "name_column",
        "record_key_column",
        "send_at_column",
        "template_column",
        "fields",
        "allow_international",
        "dedupe_on",
        "quiet_hours",
        "quiet_hours_policy",
        "rejects_path",
        "warehouse",
        "every8d_conn_id",
        "in_doubt",
        "chunk_size",
        "min_group_size",
        "concurrency",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "message": "json", "fields": "json"}
    ui_color = "#f4a460"

    def __init__(
        self,
        *,
        message: str | Mapping[str, str],
        audience: Any = None,
        sql: str | None = None,
        sql_conn_id: str | None = None,
        sql_parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        audience_format: str | None = None,
        mobile_column: str = "mobile",
        name_column: str | None = None,
        record_key_column: str | None = None,
        send_at_column: str | None = None,
        template_column: str | None = None,
        fields: Mapping[str, str] | None = None,
        subject: str = "",
        schedule_at: datetime | str | None = None,
        validity_minutes: int | str | None = None,
        campaign_id: str | None = None,
        estimate_only: bool | str = False,
        dry_run: bool | str | None = None,
        max_points: Decimal | float | str | None = None,
        check_credit: bool | str = True,
        region: str = "TW",
        allow_international: bool | str = False,
        require_mobile: bool = True,
        dedupe_on: Sequence[str] | str = ("mobile",),
        apply_suppressions: bool = True,
        quiet_hours: str | None = None,
        quiet_hours_policy: str = "reschedule",
        quiet_hours_timezone: str = "Asia/Taipei",
        send_time_zone: str = "Asia/Taipei",
        chunk_size: int = 500,
        min_group_size: int | None = None,
        concurrency: int = 4,
        in_doubt: str = "resend_filtered",
        settle_seconds: float | None = None,
        lease_seconds: float | None = None,
        max_lost_answers: int = 5,
        rejects_path: Any = None,
        warehouse: str | None = None,
        every8d_conn_id: str = DEFAULT_CONN_NAME,
        batch_rows: int = 50_000,
        plan_memory_limit: str = "128MB",
        progress_every: int = 20,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [BATCHES_ASSET])
        super().__init__(**kwargs)
        if (audience is None) == (sql is None):
            raise ValueError(
                f"{self.task_id}: give exactly one of audience=... or sql=... (with sql_conn_id)"
            )
        if sql is not None and not sql_conn_id:
            raise ValueError(f"{self.task_id}: sql=... needs sql_conn_id (any common-sql connection)")
        self.message = message
        self.audience = audience
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.sql_parameters = sql_parameters
        self.audience_format = audience_format
        self.mobile_column = mobile_column
        self.name_column = name_column
        self.record_key_column = record_key_column
        self.send_at_column = send_at_column
        self.template_column = template_column
        self.fields = fields
        self.subject = subject
        self.schedule_at = schedule_at
        self.validity_minutes = validity_minutes
        self.campaign_id = campaign_id
        if dry_run is not None:  # the old name shadowed BaseOperator.dry_run(), which Airflow calls
            warnings.warn(
                f"{type(self).__name__}(dry_run=...) is deprecated: use estimate_only=... (plan, price and "
                "report without sending)",
                DeprecationWarning,
                stacklevel=2,
            )
            estimate_only = dry_run
        self.estimate_only = estimate_only
        self.max_points = max_points
        self.check_credit = check_credit
        self.region = region
        self.allow_international = allow_international
        self.require_mobile = require_mobile
        self.dedupe_on = dedupe_on
        self.apply_suppressions = apply_suppressions
        self.quiet_hours = quiet_hours
        self.quiet_hours_policy = quiet_hours_policy
        self.quiet_hours_timezone = quiet_hours_timezone
        self.send_time_zone = send_time_zone
        self.chunk_size = chunk_size
        self.min_group_size: int | str | None = min_group_size  # a rendered template is text
        self.concurrency = concurrency
        self.in_doubt = in_doubt
        self.settle_seconds = settle_seconds
        self.lease_seconds = lease_seconds
        self.max_lost_answers = max_lost_answers
        self.rejects_path = rejects_path
        self.warehouse = warehouse
        self.every8d_conn_id = every8d_conn_id
        self.batch_rows = batch_rows
        self.plan_memory_limit = plan_memory_limit
        self.progress_every = progress_every

    # -- rendering -------------------------------------------------------------------------------------

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render as usual, but keep data objects out of the rendered fields the UI stores.

        A DataFrame or table (given directly or from an upstream task's XCom) is
        replaced by a short description such as ``<DataFrame with 1000 rows>``, so
        no phone list reaches the metadata database; an audience callable is
        called at execute time, with ``context`` if it takes one (Airflow would
        otherwise call it while rendering, with arguments of its own).
        """
        loader = self.audience if callable(self.audience) and not hasattr(self.audience, "resolve") else None
        if loader is not None:
            self.audience = None
        super().render_template_fields(context, jinja_env)
        if loader is not None:
            self._audience_loader = loader
            self.audience = f"<callable {getattr(loader, '__qualname__', type(loader).__name__)}>"
        elif self.audience is not None and not isinstance(self.audience, (str, os.PathLike)):
            self._audience_data = self.audience
            self.audience = describe(self.audience)
        image = getattr(self, "image", None)
        if isinstance(image, (bytes, bytearray)):
            self._image_bytes = bytes(image)
            self.image: Any = f"<image of {len(image)} bytes>"

    # -- building blocks (overridden by the MMS operator) -------------------------------------------

    def _image(self) -> tuple[bytes | None, str | None]:
        return None, None

    def build_spec(self) -> CampaignSpec:
        """The campaign's settings from the rendered arguments; raises ValueError on bad input."""
        from every8d.campaign.audience import ColumnMap
        from every8d.campaign.config import CampaignSpec

        message = self.message
        if isinstance(message, str) and message.lstrip().startswith("{"):
            with contextlib.suppress(ValueError):  # a dict of templates rendered by Jinja into JSON text
                message = json.loads(message)
        dedupe = [self.dedupe_on] if isinstance(self.dedupe_on, str) else list(self.dedupe_on)
        if len(dedupe) == 1 and "," in dedupe[0]:
            dedupe = [part.strip() for part in dedupe[0].split(",") if part.strip()]
        image, image_type = self._image()
        return CampaignSpec(
            kind=self.kind,  # type: ignore[arg-type]
            message=message,
            columns=ColumnMap(
                mobile=self.mobile_column,
                name=self.name_column or None,
                record_key=self.record_key_column or None,
                send_at=self.send_at_column or None,
                template=self.template_column or None,
            ),
            fields=self.fields or None,
            subject=self.subject or "",
            schedule_at=as_datetime(self.schedule_at, "schedule_at"),
            validity_minutes=as_int(self.validity_minutes, "validity_minutes"),
            region=self.region,
            allow_international=as_bool(self.allow_international, "allow_international"),
            require_mobile=as_bool(self.require_mobile, "require_mobile"),
            dedupe_on=tuple(dedupe),
            apply_suppressions=as_bool(self.apply_suppressions, "apply_suppressions"),
            quiet_hours=self.quiet_hours or None,
            quiet_hours_policy=self.quiet_hours_policy,
            quiet_hours_timezone=self.quiet_hours_timezone,
            send_time_zone=self.send_time_zone,
            chunk_size=int(self.chunk_size),
            **({} if self.min_group_size in (None, "") else {"min_group_size": int(self.min_group_size)}),
            image=image,
            image_type=image_type,
        )

    def audience_source(self, context: Context | None = None) -> Any:
        """What to read: the SQL query, the data object, the callable's result, or the path."""
        from every8d.campaign.audience import SqlAudience

        if self.sql is not None:
            return SqlAudience(self.sql, str(self.sql_conn_id), self.sql_parameters)
        loader = self.__dict__.get("_audience_loader")
        if loader is not None:
            return call_loader(loader, context) if context is not None else loader()
        if "_audience_data" in self.__dict__:
            return self.__dict__["_audience_data"]
        return self.audience

    # -- execute ---------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from every8d.campaign.errors import CampaignError
        from every8d.campaign.runner import CampaignRun, RunOptions
        from every8d.errors import Every8dError
        from every8d.hooks.every8d import Every8dHook
        from every8d.warehouse import open_warehouse

        try:
            spec = self.build_spec()
            spec.validate()
            if self.in_doubt not in ("resend_filtered", "needs_review"):
                raise ValueError(
                    f"in_doubt must be 'resend_filtered' or 'needs_review', not {self.in_doubt!r}"
                )
            dry_run = as_bool(self.estimate_only, "estimate_only")
            max_points = as_decimal(self.max_points, "max_points")
            check_credit = as_bool(self.check_credit, "check_credit")
        except ValueError as error:  # bad settings: a retry cannot fix them
            raise AirflowFailException(f"{self.task_id}: {error}") from error
        campaign_id = self.campaign_id or default_campaign_id(context)
        options = RunOptions(
            dry_run=dry_run,
            max_points=max_points,
            check_credit=check_credit,
            concurrency=int(self.concurrency),
            in_doubt=self.in_doubt,  # type: ignore[arg-type]
            batch_rows=int(self.batch_rows),
            audience_format=self.audience_format or None,
            rejects_path=self.rejects_path or None,
            plan_memory_limit=self.plan_memory_limit,
            progress_every=int(self.progress_every),
            settle_seconds=None if self.settle_seconds is None else float(self.settle_seconds),
            lease_seconds=None if self.lease_seconds is None else float(self.lease_seconds),
            max_lost_answers=int(self.max_lost_answers),
            meta={"dag_id": self.dag_id, "task_id": self.task_id, "run_id": context["ti"].run_id},
        )
        hook = Every8dHook(self.every8d_conn_id)
        warehouse = open_warehouse(self.warehouse)
        try:
            run = CampaignRun(
                spec, campaign_id=campaign_id, client=hook.get_client(), warehouse=warehouse, options=options
            )
            summary = run.run(self.audience_source(context))
        except CampaignError as error:
            self.log.error(
                "campaign %s stopped; summary: %s", campaign_id, json.dumps(error.summary, default=str)
            )
            if error.retry_safe:
                raise
            raise AirflowFailException(str(error)) from error
        except Every8dError as error:  # the gateway outside a chunk (credit read, status listing)
            if error.retry_safe:
                raise
            raise AirflowFailException(
                f"{self.task_id}: {error}"
            ) from error  # wrong password, ...: no retry helps
        except ValueError as error:  # the audience or a template is unusable (row-level problems are rejects)
            raise AirflowFailException(f"{self.task_id}: {error}") from error
        finally:
            hook.close()
            warehouse.close()
        self.log.info("campaign %s summary: %s", campaign_id, json.dumps(summary, default=str))
        if not dry_run:
            context["outlet_events"][BATCHES_ASSET].extra = {
                "campaign_id": campaign_id,
                "batches": summary.get("batches", 0),
            }
        return summary


class Every8dSendMmsOperator(Every8dSendSmsOperator):
    """Send an MMS campaign: the SMS operator's parameters plus ``image``.

    :param image: the image's bytes, or a path / ``ObjectStoragePath`` to read
        them from (jpg, png or gif, at most 300 KB; checked before sending).
    :param image_type: optional declared type (``jpg``, ``png``, ``gif``), checked against the bytes.
    """

    kind = "mms"
    template_fields: Sequence[str] = (*Every8dSendSmsOperator.template_fields, "image", "image_type")

    def __init__(self, *, image: bytes | str | Any, image_type: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image: Any = image
        self.image_type = image_type

    def _image(self) -> tuple[bytes | None, str | None]:
        if "_image_bytes" in self.__dict__:
            return self.__dict__["_image_bytes"], self.image_type or None
        if isinstance(self.image, (bytes, bytearray)):
            return bytes(self.image), self.image_type or None
        from airflow.sdk import ObjectStoragePath

        path = self.image if isinstance(self.image, ObjectStoragePath) else ObjectStoragePath(str(self.image))
        return path.read_bytes(), self.image_type or None
