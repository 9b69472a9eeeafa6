"""Shared audiences and the exactly-once check for the campaign tests (imported, not collected)."""

from __future__ import annotations

import random
from collections import Counter

import pandas as pd

TEMPLATES = {
    "promo": "Spring sale: 20% off everything this week. Reply N to opt out.",
    "personal": "Hi $name, your balance is NT$$${amount}.",
    "reminder": "Dear $name, see you at the clinic tomorrow.",
}
BAD_NUMBERS = ["abc", "0912", "0223456789", "+14155552671", "", None]


def make_audience(n: int, *, seed: int = 7, bad_every: int | None = 97, duplicate_every: int | None = 53) -> pd.DataFrame:
    """``n`` rows: three templates, mixed number formats, some invalid numbers and duplicates."""
    rng = random.Random(seed)
    first_names = [f"Name{i}" for i in range(60)]  # reminders repeat names, so some texts are shared
    rows = []
    for i in range(n):
        number = f"09{10_000_000 + i:08d}"
        style = i % 3
        mobile = number if style == 0 else f"+886{number[1:]}" if style == 1 else f"{number[:4]}-{number[4:7]}-{number[7:]}"
        if bad_every and i % bad_every == 13:
            mobile = BAD_NUMBERS[(i // bad_every) % len(BAD_NUMBERS)]
        elif duplicate_every and i % duplicate_every == 7 and i > 10:
            mobile = rows[i - 5]["mobile"]  # a duplicate of an earlier row
        template = ("promo", "personal", "reminder")[rng.randrange(3)]
        rows.append({
            "mobile": mobile,
            "name": rng.choice(first_names) if template == "reminder" else f"Customer {i}",
            "customer_id": f"C{i:06d}",
            "tier": template,
            "amount": rng.randrange(100, 10_000),
        })
    return pd.DataFrame(rows)


def clean_audience(n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` valid, distinct recipients."""
    return make_audience(n, seed=seed, bad_every=None, duplicate_every=None)


def ledger_and_rejects(warehouse, campaign_id: str):
    ledger = warehouse.query_arrow(
        "SELECT row_number, mobile, text, state, batch_id, chunk, attempt FROM every8d_send_ledger "
        "WHERE campaign_id = ? ORDER BY row_number", [campaign_id],
    )
    rejects = warehouse.query_arrow(
        "SELECT row_number, reason FROM every8d_send_rejects WHERE campaign_id = ? ORDER BY row_number",
        [campaign_id],
    )
    return ledger, rejects


def assert_exactly_once(sandbox, warehouse, campaign_id: str, audience_rows: int,
                        settled=("sent", "sent_unconfirmed")) -> dict:
    """No (number, text) delivered twice; every audience row is in the ledger or the rejects, once;
    every ledger recipient is settled and is exactly what the gateway holds."""
    ledger, rejects = ledger_and_rejects(warehouse, campaign_id)
    rows = ledger.column("row_number").to_pylist() + rejects.column("row_number").to_pylist()
    assert sorted(rows) == list(range(1, audience_rows + 1)), "a row is missing or accounted twice"
    states = Counter(ledger.column("state").to_pylist())
    assert set(states) <= set(settled), f"unsettled recipients: {states}"
    messages = sandbox.messages()
    pairs = Counter((m["mobile"], m["text"]) for m in messages)
    twice = [pair for pair, count in pairs.items() if count > 1]
    assert not twice, f"{len(twice)} (number, text) pair(s) delivered more than once"
    planned = set(zip(ledger.column("mobile").to_pylist(), ledger.column("text").to_pylist()))
    assert set(pairs) == planned, "the gateway holds messages the ledger does not, or the reverse"
    return dict(states)


FINAL_STATES = ("sent", "sent_unconfirmed", "needs_review", "unsent_no_credit", "unsent_international")


def check_invariants(sandbox, warehouse, campaign_id: str, *, final=FINAL_STATES) -> dict:
    """The four promises after any failure, as figures (the soak counts them, tests assert them zero).

    ``duplicates``: (number, text) pairs the gateway holds more than once; ``lost``: ledger recipients
    the gateway holds no message for; ``unknown``: gateway pairs the ledger does not plan, plus ledger
    batch ids the gateway never issued; ``open``: recipients not in a final state.
    """
    ledger, _ = ledger_and_rejects(warehouse, campaign_id)
    pairs = Counter((m["mobile"], m["text"]) for m in sandbox.messages())
    planned = Counter(zip(ledger.column("mobile").to_pylist(), ledger.column("text").to_pylist()))
    states = Counter(ledger.column("state").to_pylist())
    issued = {b["batch_id"] for b in sandbox.batches()}
    recorded = {b for b in ledger.column("batch_id").to_pylist() if b}
    registered = {r["batch_id"] for r in warehouse.query_arrow(
        "SELECT batch_id FROM every8d_batches WHERE campaign_id = ?", [campaign_id]).to_pylist()} if (
        "batch_id" in [c.lower() for c in warehouse.table_columns("every8d_batches")]) else set()
    return {
        "duplicates": sum(n - 1 for n in pairs.values() if n > 1),
        "lost": sum(1 for pair in planned if pair not in pairs),
        "unknown": sum(1 for pair in pairs if pair not in planned) + len((recorded | registered) - issued),
        "open": sum(n for state, n in states.items() if state not in final),
        "planned_twice": sum(n - 1 for n in planned.values() if n > 1),
        "needs_review": states.get("needs_review", 0),
        "states": dict(states),
    }


def assert_invariants(sandbox, warehouse, campaign_id: str, **kwargs) -> dict:
    figures = check_invariants(sandbox, warehouse, campaign_id, **kwargs)
    broken = {k: figures[k] for k in ("duplicates", "lost", "unknown", "open", "planned_twice") if figures[k]}
    assert not broken, f"broken promises {broken}; ledger states {figures['states']}"
    return figures
