"""Run one campaign send in a process of its own, so a test can SIGKILL, SIGSTOP or race it.

Usage: python send_campaign_process.py WAREHOUSE_TARGET AUDIENCE_PARQUET CAMPAIGN_ID CHUNK_SIZE \
    [SETTINGS_JSON]
SETTINGS_JSON may hold ``options`` (RunOptions fields), ``hook`` (``timeout``, ``connect_timeout``),
``spec`` (``message``, ``schedule_at`` in ISO 8601, ``quiet_hours``, ``quiet_hours_policy``) and ``signal_at``
(``{"step": "stamp", "when": "after", "nth": 1, "signal": "KILL"}``): the process sends itself SIGKILL or
SIGSTOP at that step (see STEPS), so a test can crash or freeze a runner at an exact point.
The EVERY8D connection comes from AIRFLOW_CONN_EVERY8D_DEFAULT.  Prints the summary, or the error's
class and summary, as one JSON line; exit 0 on success, 3 on a campaign error.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
from datetime import datetime
from decimal import Decimal

from campaign_checks import TEMPLATES

from every8d.campaign.audience import ColumnMap
from every8d.campaign.config import CampaignSpec
from every8d.campaign.errors import CampaignError
from every8d.campaign.runner import CampaignRun, RunOptions
from every8d.hooks.every8d import Every8dHook
from every8d.warehouse import open_warehouse

RUNS: list = []  # the CampaignRun of this process, once built


def _steps() -> dict:
    from every8d.campaign import lease, resolve, runner, sender

    return {  # step -> (owner, attribute)
        "plan": (runner, "plan_audience"),  # planning: the campaign row says planning, nothing written
        "budget": (runner.CampaignRun, "_check_budget"),  # plan committed, nothing claimed
        "fenced": (runner.CampaignRun, "_fenced"),  # the nth fenced ledger transaction is about to start
        "stamp": (runner.CampaignRun, "_stamp"),  # a request stamped (committed), not yet written
        "request": (sender, "call_gateway"),  # before: stamped, not written; after: answered, not recorded
        "record": (runner.CampaignRun, "_record"),  # after: the wave's answers committed
        "resend": (resolve, "_resend_group"),  # resolving an in-doubt chunk through the filter
        "release": (lease.Lease, "release"),  # all done, the lease not yet let go
    }


def arm(step: str, when: str = "after", nth: int = 1, signal_name: str = "KILL") -> None:
    """Make the ``nth`` call of ``step`` send this process ``SIG<signal_name>`` before or after it runs."""
    owner, name = _steps()[step]
    original = getattr(owner, name)
    calls = {"n": 0}
    lock = threading.Lock()
    number = getattr(signal, f"SIG{signal_name}")

    def hit() -> None:
        with lock:
            calls["n"] += 1
            now = calls["n"] == nth
        if now:
            print(json.dumps({"signal_at": step, "when": when, "nth": nth}), flush=True)
            # Holding the run's warehouse lock, no thread of this process is inside a ledger
            # transaction: a frozen DuckDB runner would otherwise keep the file locked for everyone.
            run_lock = RUNS[0].lock if RUNS else threading.Lock()
            with run_lock:  # to this very thread: it stops before it returns to user space
                signal.pthread_kill(threading.get_ident(), number)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        if when == "before":
            hit()
        result = original(*args, **kwargs)
        if when == "after":
            hit()
        return result

    setattr(owner, name, wrapped)


def main(target: str, audience: str, campaign_id: str, chunk_size: str, settings: str = "{}") -> int:
    config = json.loads(settings)
    if config.get("signal_at"):
        at = dict(config["signal_at"])
        arm(at.pop("step"), signal_name=at.pop("signal", "KILL"), **at)
    spec_config = dict(config.get("spec", {}))
    message = spec_config.pop("message", TEMPLATES)
    if spec_config.get("schedule_at"):
        spec_config["schedule_at"] = datetime.fromisoformat(spec_config["schedule_at"])
    spec = CampaignSpec(
        kind="sms",
        message=message,
        chunk_size=int(chunk_size),
        columns=ColumnMap(
            mobile="mobile", name="name", template="tier" if isinstance(message, dict) else None
        ),
        **spec_config,
    )
    options = {"concurrency": 2, **config.get("options", {})}
    if options.get("max_points") is not None:
        options["max_points"] = Decimal(str(options["max_points"]))
    hook = Every8dHook(**config.get("hook", {}))
    warehouse = open_warehouse(target)
    try:
        run = CampaignRun(
            spec, campaign_id=campaign_id, hook=hook, warehouse=warehouse, options=RunOptions(**options)
        )
        RUNS.append(run)
        print(json.dumps({"ok": True, "summary": run.run(audience)}, default=str), flush=True)
        return 0
    except CampaignError as error:
        print(
            json.dumps(
                {"ok": False, "error": type(error).__name__, "message": str(error), "summary": error.summary},
                default=str,
            ),
            flush=True,
        )
        return 3
    finally:
        hook.close()
        warehouse.close()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
