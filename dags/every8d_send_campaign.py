"""Send an SMS or MMS campaign from the Airflow UI: a validated form, a dry-run plan, then the send.

Trigger it with the form (*Trigger DAG* → the parameters below).  Bad input is
refused at trigger time by each parameter's JSON schema; what a schema cannot
see (a missing audience column, a template naming an unknown field) fails the
first task, before anything is sent.  The audience is snapshotted once into
Parquet, so the plan you read and the send that follows use the same rows.
With ``dry_run`` on (the default), the run stops after the plan: read it in
the ``plan_*`` task's log or XCom (recipients, rejects by reason, points per
template), then trigger again with ``dry_run`` off.

The send task retries by itself (a killed worker's send resumes from the
ledger: nothing sent twice); the ``every8d_batches`` asset event that starts
the status sync comes from ``announce_batches``, which is skipped (no event)
when no batch was registered, as on a dry run.  Campaign tasks have a higher
priority than the status sync, whose tasks keep to their own pool.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from every8d.assets import BATCHES_ASSET
from every8d.operators.send import Every8dSendMmsOperator, Every8dSendSmsOperator

SAMPLE_AUDIENCE = str(Path(__file__).resolve().parent.parent / "include" / "sample_audience.csv")
SQL_OR_FILE = (
    r"^\s*(?:(?:[Ss][Ee][Ll][Ee][Cc][Tt]|[Ww][Ii][Tt][Hh])\s[\s\S]+"
    r"|\S+\.(?:[Cc][Ss][Vv]|[Pp][Aa][Rr][Qq][Uu][Ee][Tt]|[Pp][Qq])(?:\.gz)?)\s*$"
)
ISO_DATETIME_WITH_ZONE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:?\d{2})$"

PARAMS = {
    "audience": Param(
        SAMPLE_AUDIENCE,
        type="string",
        pattern=SQL_OR_FILE,
        title="Audience",
        description=(
            "A CSV or Parquet file (local path or s3://, gs://, ... URL) or a SQL query (SELECT/WITH) "
            "run on the SQL connection below. Needs a `mobile` column; `name` and any template field "
            "are optional."
        ),
    ),
    "sql_conn_id": Param(
        None,
        type=["null", "string"],
        pattern=r"^[A-Za-z0-9_.-]+$",
        title="SQL connection",
        description="Connection id the audience query runs on (only for a SQL audience).",
    ),
    "message": Param(
        "$name 您好，您的$tier會員點數為 $points 點，本週兌換享 9 折！",
        type="string",
        minLength=1,
        maxLength=2000,
        title="Message template",
        description="`$column` or `${column}` is replaced by the audience's column; `$$` is a dollar sign.",
    ),
    "subject": Param(
        None,
        type=["null", "string"],
        maxLength=95,
        title="Subject",
        description="A note for the account's records (MMS: at most 15 characters, 95 if ASCII).",
    ),
    "kind": Param("sms", type="string", enum=["sms", "mms"], title="Kind"),
    "mms_image": Param(
        None,
        type=["null", "string"],
        pattern=r"^\S+\.(?:[Jj][Pp][Ee]?[Gg]|[Pp][Nn][Gg]|[Gg][Ii][Ff])$",
        title="MMS image",
        description="A jpg, png or gif path or URL (MMS only, at most 300 KB).",
    ),
    "send_at": Param(
        None,
        type=["null", "string"],
        pattern=ISO_DATETIME_WITH_ZONE,
        title="Send at",
        description="Empty sends now; otherwise an ISO 8601 time with its offset, "
        "e.g. 2026-12-01T09:30:00+08:00 (the gateway schedules in Asia/Taipei time).",
    ),
    "max_points": Param(
        5000,
        type=["null", "number"],
        minimum=1,
        title="Budget cap (points)",
        description="The run fails before the first send when the estimate exceeds it.",
    ),
    "allow_international": Param(
        False,
        type="boolean",
        title="Allow international numbers",
        description="Non-+886 numbers cost 3x and must be enabled on the account.",
    ),
    "chunk_size": Param(
        500,
        type="integer",
        minimum=1,
        maximum=10000,
        title="Recipients per call",
        description="Numbers per send call (the vendor suggests 500-2000 for personalized sends); "
        "a fully personalized audience goes out in about recipients / this many batches.",
    ),
    "min_group_size": Param(
        250,
        type="integer",
        minimum=2,
        title="Group identical texts from",
        description="A text shared by at least this many recipients goes out as its own "
        "sendSMS batches; smaller groups ride in the personalized calls.",
    ),
    "concurrency": Param(
        4, type="integer", minimum=1, maximum=16, title="Calls in flight", description="Send calls at once."
    ),
    "dry_run": Param(
        True,
        type="boolean",
        title="Dry run",
        description="Only plan: recipients, rejects and points. Nothing is sent.",
    ),
}

#: Jinja templates, rendered into each argument's declared type when the task runs.
COMMON: dict[str, Any] = {
    "audience": "{{ ti.xcom_pull(task_ids='stage_audience')['path'] }}",
    "message": "{{ params.message }}",
    "subject": "{{ params.subject or '' }}",
    "schedule_at": "{{ params.send_at or '' }}",
    "max_points": "{{ params.max_points if params.max_points is not none else '' }}",
    "allow_international": "{{ params.allow_international }}",
    "name_column": "{{ 'name' if 'name' in ti.xcom_pull(task_ids='stage_audience')['columns'] else '' }}",
    "campaign_id": "{{ dag.dag_id }}.{{ run_id }}",
    "chunk_size": "{{ params.chunk_size }}",
    "min_group_size": "{{ params.min_group_size }}",
    "concurrency": "{{ params.concurrency }}",
    # The batches asset is announced by `announce_batches`, only when batches were registered.
    "outlets": [],
}
#: Above the status sync's tasks (priority 1): a campaign goes first when slots are short.
CAMPAIGN_PRIORITY = 10
#: A killed worker's send resumes from the ledger; the delay lets its in-flight requests settle.
SEND_RETRIES: dict[str, Any] = {"retries": 3, "retry_delay": timedelta(seconds=30)}

with DAG(
    dag_id="every8d_send_campaign",
    schedule=None,
    catchup=False,
    params=PARAMS,
    tags=["every8d"],
    doc_md=__doc__,
    max_active_runs=1,
    default_args={"priority_weight": CAMPAIGN_PRIORITY, "weight_rule": "absolute"},
) as dag:

    @task
    def stage_audience(params: dict, run_id: str) -> dict:
        """Read the audience once (file or SQL) and keep the columns the message needs, as Parquet."""
        from every8d.campaign.staging import stage_campaign_audience

        return stage_campaign_audience(
            params["audience"], params["message"], sql_conn_id=params["sql_conn_id"] or None, run_id=run_id
        )

    @task.branch
    def choose_kind(params: dict) -> list[str]:
        """The chosen kind's plan and dry-run check; the other kind's tasks are skipped."""
        if params["kind"] == "mms" and not params["mms_image"]:
            raise ValueError("an MMS campaign needs an MMS image")
        return [f"plan_{params['kind']}", f"confirm_{params['kind']}"]

    @task(outlets=[BATCHES_ASSET])
    def announce_batches(summary: dict) -> dict:
        """Start the status sync (the batches asset event), unless no batch was registered."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowSkipException

        batches = int((summary or {}).get("batches") or 0)
        if batches == 0:
            raise AirflowSkipException("no batch registered: no status run needed")
        get_current_context()["outlet_events"][BATCHES_ASSET].extra = {
            "campaign_id": summary.get("campaign_id"),
            "batches": batches,
        }
        return {"batches": batches}

    # Each task in the chain before the send pays a task's start-up (3-6 s on a busy host), so what
    # reads only the form runs beside what reads the audience: choosing the kind beside the staging,
    # the dry-run check beside the plan.  The send is the third task to start, not the fifth.
    # Airflow passes `params` and `run_id` from the task's context; the decorators' types cannot say so.
    staged = stage_audience()  # type: ignore[call-arg,misc]
    kind = choose_kind()  # type: ignore[call-arg,misc]

    no_extra: dict[str, Any] = {}
    for name, operator, extra in (
        ("sms", Every8dSendSmsOperator, no_extra),
        ("mms", Every8dSendMmsOperator, {"image": "{{ params.mms_image }}"}),
    ):
        plan = operator(task_id=f"plan_{name}", estimate_only=True, **COMMON, **extra)

        @task.short_circuit(task_id=f"confirm_{name}")
        def confirm(params: dict) -> bool:
            """Skip the send on a dry run: the plan beside this task is the result."""
            return not params["dry_run"]

        send = operator(task_id=f"send_{name}", estimate_only=False, **COMMON, **extra, **SEND_RETRIES)
        checked = confirm()  # type: ignore[call-arg,misc]
        [staged, kind] >> plan >> send
        kind >> checked >> send
        # an XComArg: the decorators' types cannot say it resolves to the upstream's dict
        send >> announce_batches.override(task_id=f"announce_{name}")(send.output)  # type: ignore[arg-type]
