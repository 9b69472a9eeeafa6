"""Run one campaign send in a process of its own, so a test can SIGKILL, SIGSTOP or race it.

Usage: python send_campaign_process.py WAREHOUSE_TARGET AUDIENCE_PARQUET CAMPAIGN_ID CHUNK_SIZE [SETTINGS_JSON]
SETTINGS_JSON may hold ``options`` (RunOptions fields), ``hook`` (``timeout``, ``connect_timeout``) and
``spec`` (``message``, ``schedule_at`` in ISO 8601, ``quiet_hours``, ``quiet_hours_policy``).
The EVERY8D connection comes from AIRFLOW_CONN_EVERY8D_DEFAULT.  Prints the summary, or the error's
class and summary, as one JSON line; exit 0 on success, 3 on a campaign error.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from decimal import Decimal

from campaign_checks import TEMPLATES

from every8d.campaign.audience import ColumnMap
from every8d.campaign.config import CampaignSpec
from every8d.campaign.errors import CampaignError
from every8d.campaign.runner import CampaignRun, RunOptions
from every8d.hooks.every8d import Every8dHook
from every8d.warehouse import open_warehouse


def main(target: str, audience: str, campaign_id: str, chunk_size: str, settings: str = "{}") -> int:
    config = json.loads(settings)
    spec_config = dict(config.get("spec", {}))
    message = spec_config.pop("message", TEMPLATES)
    if spec_config.get("schedule_at"):
        spec_config["schedule_at"] = datetime.fromisoformat(spec_config["schedule_at"])
    spec = CampaignSpec(kind="sms", message=message, chunk_size=int(chunk_size),
                        columns=ColumnMap(mobile="mobile", name="name",
                                          template="tier" if isinstance(message, dict) else None),
                        **spec_config)
    options = {"concurrency": 2, **config.get("options", {})}
    if options.get("max_points") is not None:
        options["max_points"] = Decimal(str(options["max_points"]))
    hook = Every8dHook(**config.get("hook", {}))
    warehouse = open_warehouse(target)
    try:
        run = CampaignRun(spec, campaign_id=campaign_id, hook=hook, warehouse=warehouse,
                          options=RunOptions(**options))
        print(json.dumps({"ok": True, "summary": run.run(audience)}, default=str), flush=True)
        return 0
    except CampaignError as error:
        print(json.dumps({"ok": False, "error": type(error).__name__, "message": str(error),
                          "summary": error.summary}, default=str), flush=True)
        return 3
    finally:
        hook.close()
        warehouse.close()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
