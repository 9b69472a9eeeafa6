"""Run one campaign send in a process of its own, so a test can SIGKILL it mid-campaign.

Usage: python send_campaign_process.py WAREHOUSE_TARGET AUDIENCE_PARQUET CAMPAIGN_ID CHUNK_SIZE
The EVERY8D connection comes from AIRFLOW_CONN_EVERY8D_DEFAULT.  Prints the summary as JSON.
"""

from __future__ import annotations

import json
import sys

from campaign_checks import TEMPLATES

from every8d.campaign.audience import ColumnMap
from every8d.campaign.config import CampaignSpec
from every8d.campaign.runner import CampaignRun, RunOptions
from every8d.hooks.every8d import Every8dHook
from every8d.warehouse import open_warehouse


def main(target: str, audience: str, campaign_id: str, chunk_size: str) -> None:
    spec = CampaignSpec(kind="sms", message=TEMPLATES, chunk_size=int(chunk_size),
                        columns=ColumnMap(mobile="mobile", name="name", template="tier"))
    run = CampaignRun(spec, campaign_id=campaign_id, hook=Every8dHook(), warehouse=open_warehouse(target),
                      options=RunOptions(concurrency=2))
    print(json.dumps(run.run(audience)))


if __name__ == "__main__":
    main(*sys.argv[1:])
