"""Campaign soak: many campaigns under a seeded random mix of faults, kills, freezes and concurrent runners.

For each campaign the sandbox is reset and armed with random faults on every
endpoint the campaign uses (dropped and reset connections, 5xx, garbage,
cut answers, sends the gateway executes after the client's read timeout,
-99 "unknown error"), then 2-3 runner processes of the same campaign start
together; at random moments one is SIGKILLed or frozen (SIGSTOP, SIGCONT a
few seconds later).  When they are all gone, retry runners start (as
Airflow's retries would) until the campaign is done, parked or out of
rounds.  Then the promises are counted, never assumed:

* ``duplicates``: (number, text) pairs the sandbox holds more than once;
* ``lost``: planned recipients the sandbox has no message for, outside ``needs_review``;
* ``open``: recipients left ``pending`` / ``in_flight`` after the last round;
* ``unknown``: messages or batch ids the ledger does not know;
* ``needs_review``: recipients parked for a person (said out loud, not a failure);
* ``unrecorded``: batches the sandbox issued that the ledger never recorded (by an answer, as stale,
  or adopted from status pushes) and that do not hold only parked (``needs_review``) recipients;
  ``adopted``: batches learned from the pushes (the sandbox pushes to a loopback receiver, duplicated
  and reordered at random; the pushes are flushed into the warehouse after each campaign's runs and
  the delivery-status DAG's adoption step runs); ``unadopted``: unrecorded batches of parked chunks.

Usage: ``.venv/bin/python bench/campaign_soak.py [--quick] [--campaigns N] [--seed S] [--postgres DSN]``.
The last line printed is one JSON object: campaigns, faults, kills, freezes, duplicates, lost,
needs_review, open, unknown, seed, seconds.  Exit status 1 when a promise broke.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "campaign"))  # campaign_checks: the tests' checks and push capture
FINAL = {"sent", "sent_unconfirmed", "needs_review", "unsent_no_credit", "unsent_international"}
TEMPLATES = {
    "promo": "Spring sale: 20% off everything this week. Reply N to opt out.",
    "personal": "Hi $name, your balance is NT$$${amount}.",
}
#: Short deadlines so leases (3 s), settle times (2.5 s) and takeovers play out in seconds.
HOOK = {"timeout": 1.0, "connect_timeout": 0.5}
OPTIONS = {"lease_seconds": 3.0, "concurrency": 2, "busy_timeout": 120}
SEND_ENDPOINTS = ("sendSMS", "SendParamSMS", "sendSMS4FilterMessage")


# -- child: one runner ------------------------------------------------------------------------------


def child(target: str, audience: str, campaign_id: str, settings: str) -> int:
    from every8d.campaign.audience import ColumnMap
    from every8d.campaign.config import CampaignSpec
    from every8d.campaign.errors import CampaignError
    from every8d.campaign.runner import CampaignRun, RunOptions
    from every8d.errors import Every8dError
    from every8d.hooks.every8d import Every8dHook
    from every8d.warehouse import open_warehouse

    config = json.loads(settings)
    spec_config = dict(config["spec"])
    if spec_config.get("schedule_at"):
        spec_config["schedule_at"] = datetime.fromisoformat(spec_config["schedule_at"])
    message = spec_config.pop("message")
    spec = CampaignSpec(
        kind="sms",
        message=message,
        columns=ColumnMap(
            mobile="mobile", name="name", template="tier" if isinstance(message, dict) else None
        ),
        apply_suppressions=False,
        **spec_config,
    )
    hook = Every8dHook(**HOOK)
    warehouse = open_warehouse(target)
    try:
        summary = CampaignRun(
            spec, campaign_id=campaign_id, hook=hook, warehouse=warehouse, options=RunOptions(**OPTIONS)
        ).run(audience)
        print(json.dumps({"ok": True, "summary": summary}, default=str), flush=True)
        return 0
    except (CampaignError, Every8dError) as error:
        retry = bool(getattr(error, "retry_safe", False))
        print(
            json.dumps(
                {
                    "ok": False,
                    "error": type(error).__name__,
                    "retry": retry,
                    "summary": getattr(error, "summary", {}),
                },
                default=str,
            ),
            flush=True,
        )
        return 3 if retry else 4
    finally:
        hook.close()
        warehouse.close()


# -- parent -------------------------------------------------------------------------------------------


def write_audience(path: Path, rng: random.Random, index: int) -> tuple[int, object]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = rng.randrange(60, 360)
    base = 10_000_000 + index * 1_000
    mixed = rng.random() < 0.5
    rows = [
        {
            "mobile": f"09{base + i:08d}",
            "name": f"Customer {i}",
            "amount": rng.randrange(100, 9_999),
            "tier": rng.choice(list(TEMPLATES)) if mixed else "promo",
        }
        for i in range(n)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return n, (TEMPLATES if mixed else TEMPLATES["promo"])


def random_faults(rng: random.Random) -> list[tuple[str, str, dict]]:
    """A few faults on the endpoints a campaign touches; none that a correct client cannot survive."""
    kinds = [
        ("drop", {}),
        ("reset", {}),
        ("reset_after", {}),
        ("http500", {}),
        ("http503", {"retry_after": 1}),
        ("garbage", {}),
        ("empty", {}),
        ("html", {}),
        ("cut", {"at": -8}),
        ("slow", {"delay": round(rng.uniform(1.2, 2.0), 2), "execute": False}),  # runs after the read timeout
        ("slow", {"delay": 0.4, "execute": True}),
        ("error", {"code": -99}),
    ]
    faults = []
    for _ in range(rng.randrange(0, 5)):
        endpoint = rng.choice((*SEND_ENDPOINTS, "getCredit", "getDeliveryStatus"))
        kind, options = rng.choice(kinds)
        if endpoint in ("getCredit", "getDeliveryStatus"):
            kind, options = rng.choice([("reset", {}), ("http500", {}), ("cut", {"at": 2}), ("garbage", {})])
        faults.append((endpoint, kind, {**options, "count": rng.randrange(1, 3)}))
    return faults


def start_runner(
    target: str, audience: Path, campaign_id: str, settings: dict, env: dict
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", target, str(audience), campaign_id, json.dumps(settings)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def last_result(output: str) -> dict | None:
    for line in reversed(output.splitlines()):
        if line.startswith("{") and '"ok"' in line:
            return json.loads(line)
    return None


def harass(processes: list[subprocess.Popen], rng: random.Random, figures: Counter) -> None:
    """Kill or freeze runners at random moments while they work; wait for all of them."""
    events = []
    for process in processes:
        roll = rng.random()
        if roll < 0.3:
            events.append((time.monotonic() + rng.uniform(0.3, 4.0), "kill", process))
        elif roll < 0.55:
            events.append((time.monotonic() + rng.uniform(0.3, 4.0), "freeze", process))
    thaw: list[tuple[float, subprocess.Popen]] = []
    while any(p.poll() is None for p in processes) or thaw:
        now = time.monotonic()
        for event in [e for e in events if e[0] <= now]:
            events.remove(event)
            _, what, process = event
            if process.poll() is not None:
                continue
            if what == "kill":
                process.send_signal(signal.SIGKILL)
                figures["kills"] += 1
            else:
                process.send_signal(signal.SIGSTOP)
                figures["freezes"] += 1
                thaw.append((now + rng.uniform(2.0, 7.0), process))
        for item in [t for t in thaw if t[0] <= now]:
            thaw.remove(item)
            item[1].send_signal(signal.SIGCONT)
        time.sleep(0.02)


def check(sandbox, warehouse, campaign_id: str) -> dict:
    from campaign_checks import awaiting_recipients, recorded_batches

    ledger = warehouse.query_arrow(
        "SELECT mobile, text, state, batch_id FROM every8d_send_ledger WHERE campaign_id = ?", [campaign_id]
    )
    messages = sandbox.messages()
    pairs = Counter((m["mobile"], m["text"]) for m in messages)
    rows = ledger.to_pylist()
    planned = {(r["mobile"], r["text"]) for r in rows}
    issued = {b["batch_id"] for b in sandbox.batches()}
    unrecorded = issued - recorded_batches(warehouse, campaign_id)
    explained = awaiting_recipients(warehouse, campaign_id) | {
        (r["mobile"], r["text"]) for r in rows if r["state"] == "needs_review"
    }
    held: dict = {}
    for m in messages:
        held.setdefault(m["batch_id"], set()).add((m["mobile"], m["text"]))
    unadopted = {b for b in unrecorded if held.get(b) and held[b] <= explained}
    return {
        "unrecorded": len(unrecorded - unadopted),
        "unadopted": len(unadopted),
        "duplicates": sum(n - 1 for n in pairs.values() if n > 1),
        "lost": sum(
            1 for r in rows if r["state"] != "needs_review" and (r["mobile"], r["text"]) not in pairs
        ),
        "open": sum(1 for r in rows if r["state"] not in FINAL),
        "unknown": sum(1 for p in pairs if p not in planned)
        + len({r["batch_id"] for r in rows if r["batch_id"]} - issued),
        "needs_review": sum(1 for r in rows if r["state"] == "needs_review"),
        "recipients": len(rows),
    }


def soak(campaigns: int, seed: int, target: str, work: Path, rounds: int = 6) -> dict:
    from every8d.sandbox.server import SandboxServer
    from every8d.warehouse import open_warehouse

    rng = random.Random(seed)
    figures: Counter = Counter()
    broken = []
    started = time.monotonic()
    from campaign_checks import PushCapture, adopt_after_pushes

    with SandboxServer(frozen_clock=True, prefix="/soak") as server:
        sandbox = server.client()
        pushes = PushCapture(sandbox, work / "push-journal.sqlite3")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]),
            "AIRFLOW_HOME": str(work / "airflow"),
            "AIRFLOW_CONN_EVERY8D_DEFAULT": json.dumps(
                {"conn_type": "every8d", "host": server.base_url, "login": "demo", "password": "secret"}
            ),
        }
        warehouse = open_warehouse(target)
        for index in range(campaigns):
            sandbox.reset()
            push_rng = random.Random(seed * 1_000 + index)  # apart from rng: a seed replays the same faults
            pushes.arm(duplicates=push_rng.choice([0, 0, 1]), reorder=push_rng.random() < 0.5)
            campaign_id = f"soak-{seed}-{index}"
            audience = work / f"audience-{index}.parquet"
            _, message = write_audience(audience, rng, index)
            spec: dict = {"message": message, "chunk_size": rng.choice([20, 40, 75])}
            roll = rng.random()
            if roll < 0.12:
                spec["schedule_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            elif roll < 0.2:
                taipei = datetime.now(timezone(timedelta(hours=8)))
                spec["quiet_hours"] = (
                    f"{taipei - timedelta(hours=1):%H:%M}-{taipei + timedelta(hours=2):%H:%M}"
                )
            for endpoint, kind, options in random_faults(rng):
                sandbox.inject_fault(endpoint, kind, **options)
                figures["faults"] += 1
            settings = {"spec": spec}
            processes = [
                start_runner(target, audience, campaign_id, settings, env)
                for _ in range(rng.choice([2, 2, 3]))
            ]
            time.sleep(rng.uniform(0, 0.3))
            harass(processes, rng, figures)
            outcome = None
            for _ in range(rounds):  # Airflow's retries: until done, parked or a terminal stop
                results = [last_result(p.stdout.read()) for p in processes]
                done = [r for r in results if r and (r["ok"] or not r.get("retry"))]
                if done:
                    outcome = done[0]
                    break
                sandbox.clear_faults() if rng.random() < 0.3 else None
                processes = [start_runner(target, audience, campaign_id, settings, env)]
                figures["retries"] += 1
                harass(processes, rng, figures) if rng.random() < 0.2 else processes[0].wait()
            sandbox.clear_faults()
            adoption = adopt_after_pushes(pushes, warehouse)  # what the delivery-status DAG's push step does
            figures["adopted"] += adoption["adopted"]
            figures["ambiguous"] += adoption["ambiguous"]
            result = check(sandbox, warehouse, campaign_id)
            for key in (
                "duplicates",
                "lost",
                "open",
                "unknown",
                "unrecorded",
                "unadopted",
                "needs_review",
                "recipients",
            ):
                figures[key] += result[key]
            figures["campaigns"] += 1
            status = "done" if outcome and outcome["ok"] else (outcome or {}).get("error", "unfinished")
            figures[f"ended_{status}"] += 1
            if any(result[k] for k in ("duplicates", "lost", "open", "unknown", "unrecorded")):
                broken.append({"campaign": campaign_id, **result, "end": status})
            print(json.dumps({"campaign": campaign_id, "end": status, **result}), file=sys.stderr, flush=True)
        warehouse.close()
        pushes.close()
    out = {
        "bench": "campaign_soak",
        "seed": seed,
        "campaigns": figures["campaigns"],
        "faults": figures["faults"],
        "kills": figures["kills"],
        "freezes": figures["freezes"],
        "retries": figures["retries"],
        "recipients": figures["recipients"],
        "duplicates": figures["duplicates"],
        "lost": figures["lost"],
        "open": figures["open"],
        "unknown": figures["unknown"],
        "unrecorded": figures["unrecorded"],
        "adopted": figures["adopted"],
        "ambiguous": figures["ambiguous"],
        "unadopted": figures["unadopted"],
        "needs_review": figures["needs_review"],
        "ended": {k[6:]: v for k, v in sorted(figures.items()) if k.startswith("ended_")},
        "broken": broken[:10],
        "seconds": round(time.monotonic() - started, 1),
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 campaigns (a minute or two)")
    parser.add_argument("--campaigns", type=int)
    parser.add_argument("--seed", type=int, help="default: random, printed")
    parser.add_argument("--postgres", help="a Postgres DSN for the ledger instead of a DuckDB file")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    campaigns = args.campaigns or (4 if args.quick else 300)
    print(f"campaign soak: seed {seed}, {campaigns} campaigns", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="every8d-soak-") as tmp:
        work = Path(tmp)
        target = f"duckdb://{work / 'ledger.duckdb'}"
        if args.postgres:  # the runners inherit the connection
            os.environ["AIRFLOW_CONN_SOAK_LEDGER"] = args.postgres
            target = "airflow://soak_ledger"
        out = soak(campaigns, seed, target, work)
    print(json.dumps(out))
    return 1 if out["duplicates"] or out["lost"] or out["open"] or out["unknown"] or out["unrecorded"] else 0


if __name__ == "__main__":
    sys.exit(main())
