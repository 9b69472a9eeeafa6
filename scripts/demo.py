"""``make demo``: a small campaign through the hook against a local sandbox gateway.

Starts the sandbox, points ``AIRFLOW_CONN_EVERY8D_DEFAULT`` at it, sends a
personalized campaign and a same-text broadcast, moves the sandbox clock an
hour forward, pages the delivery status and prints a summary.  Nothing is
left running afterwards.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from decimal import Decimal

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="every8d-demo-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from every8d import wire  # noqa: E402
from every8d.hooks.every8d import Every8dHook  # noqa: E402
from every8d.sandbox.server import SandboxServer  # noqa: E402

AUDIENCE = [
    ("王小明", "0912345601", "120"),
    ("陳美玲", "0912345602", "85"),
    ("Amy Lin", "+886912345603", "300"),
    ("林志豪", "0912345697", "40"),  # ends in 97: the sandbox's "handset problem" outcome
    ("張雅婷", "0912345698", "15"),  # ends in 98: "no such number"
]


def main() -> None:
    with SandboxServer(frozen_clock=True, prefix="/demo") as server:
        sandbox = server.client()
        os.environ["AIRFLOW_CONN_EVERY8D_DEFAULT"] = sandbox.connection_json()
        hook = Every8dHook()
        print(f"Sandbox gateway at {server.base_url}")
        print(f"Credit before: {hook.get_credit()} points")

        recipients = [
            wire.ParamRecipient(mobile, [name, points], name=name, record_id=f"demo-{index}")
            for index, (name, mobile, points) in enumerate(AUDIENCE)
        ]
        personal = hook.send_param_sms(recipients, template="%field1% 您好，您的會員點數為 %field2% 點 🎉")
        broadcast = hook.send_sms("週末限時優惠：全館 8 折！回覆 STOP 取消訂閱", [m for _, m, _ in AUDIENCE])
        print(f"Sent {personal.sent} personalized messages (batch {personal.batch_id}, {personal.cost} points)")
        print(f"Sent {broadcast.sent} broadcast messages (batch {broadcast.batch_id}, {broadcast.cost} points)")

        sandbox.advance(3600)  # an hour later on the sandbox's clock
        rows = []
        for batch in (personal, broadcast):
            for page in hook.iter_delivery_status_pages(batch.batch_id):
                rows.extend(page.records())

        groups = Counter(record.info.group for record in rows)
        points = sum((record.points or Decimal(0) for record in rows), Decimal(0))
        print()
        print(f"{'status':<10} {'messages':>8}")
        for group, count in sorted(groups.items()):
            print(f"{group:<10} {count:>8}")
        print(f"{'total':<10} {len(rows):>8}   points spent: {points}")
        for record in rows:
            if record.info.group == "failed":
                print(f"  failed: {record.mobile[:-4]}**** status {record.status} ({record.info.meaning})")
        print(f"Credit after: {hook.get_credit()} points")
        hook.close()
    print("Sandbox stopped.")


if __name__ == "__main__":
    main()
