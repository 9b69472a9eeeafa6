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


def make_audience(
    n: int, *, seed: int = 7, bad_every: int | None = 97, duplicate_every: int | None = 53
) -> pd.DataFrame:
    """``n`` rows: three templates, mixed number formats, some invalid numbers and duplicates."""
    rng = random.Random(seed)
    first_names = [f"Name{i}" for i in range(60)]  # reminders repeat names, so some texts are shared
    rows = []
    for i in range(n):
        number = f"09{10_000_000 + i:08d}"
        style = i % 3
        mobile = (
            number
            if style == 0
            else f"+886{number[1:]}"
            if style == 1
            else f"{number[:4]}-{number[4:7]}-{number[7:]}"
        )
        if bad_every and i % bad_every == 13:
            mobile = BAD_NUMBERS[(i // bad_every) % len(BAD_NUMBERS)]
        elif duplicate_every and i % duplicate_every == 7 and i > 10:
            mobile = rows[i - 5]["mobile"]  # a duplicate of an earlier row
        template = ("promo", "personal", "reminder")[rng.randrange(3)]
        rows.append(
            {
                "mobile": mobile,
                "name": rng.choice(first_names) if template == "reminder" else f"Customer {i}",
                "customer_id": f"C{i:06d}",
                "tier": template,
                "amount": rng.randrange(100, 10_000),
            }
        )
    return pd.DataFrame(rows)


def clean_audience(n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` valid, distinct recipients."""
    return make_audience(n, seed=seed, bad_every=None, duplicate_every=None)


def ledger_and_rejects(warehouse, campaign_id: str):
    ledger = warehouse.query_arrow(
        'SELECT "row_number", mobile, text, state, batch_id, chunk, attempt FROM every8d_send_ledger '
        'WHERE campaign_id = ? ORDER BY "row_number"',
        [campaign_id],
    )
    rejects = warehouse.query_arrow(
        'SELECT "row_number", reason FROM every8d_send_rejects WHERE campaign_id = ? ORDER BY "row_number"',
        [campaign_id],
    )
    return ledger, rejects


def assert_exactly_once(
    sandbox, warehouse, campaign_id: str, audience_rows: int, settled=("sent", "sent_unconfirmed")
) -> dict:
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
    planned = set(zip(ledger.column("mobile").to_pylist(), ledger.column("text").to_pylist(), strict=True))
    assert set(pairs) == planned, "the gateway holds messages the ledger does not, or the reverse"
    return dict(states)


FINAL_STATES = ("sent", "sent_unconfirmed", "needs_review", "unsent_no_credit", "unsent_international")


class PushCapture:
    """The sandbox's status pushes, delivered over HTTP and moved into the warehouse the product's way.

    A loopback receiver (:class:`~every8d.sandbox.catcher.RequestCatcher`) takes the GETs; each is
    parsed as the push endpoint does (``parse_push``), appended to a real push journal and flushed
    with ``flush_journal``, so the campaign ledger finds them in ``every8d_push_events``.
    """

    def __init__(self, sandbox, journal_path) -> None:
        from every8d.sandbox.catcher import RequestCatcher

        self.sandbox, self.journal_path = sandbox, journal_path
        self.catcher = RequestCatcher().__enter__()
        self.taken = 0
        self.arm()

    def arm(self, **options) -> None:
        """Point the sandbox's pushes here (again after a reset); ``duplicates``/``reorder`` as set_push."""
        self.sandbox.set_push(f"{self.catcher.url}/push", **options)

    def deliver(self, warehouse, advance: float = 120.0) -> int:
        """Let statuses move, wait for every push, and flush them into ``warehouse``; pushes moved."""
        from every8d.callbacks.flush import flush_journal
        from every8d.callbacks.journal import Journal
        from every8d.callbacks.params import parse_push

        if advance:
            self.sandbox.advance(advance)
        assert self.sandbox.drain_pushes(30), "the sandbox could not deliver its pushes"
        fresh = self.catcher.requests[self.taken :]
        self.taken += len(fresh)
        with Journal(self.journal_path) as journal:
            journal.append([parse_push(r.path.partition("?")[2].encode()) for r in fresh])
        flush_journal(warehouse, journal_path=self.journal_path)
        return len(fresh)

    def close(self) -> None:
        self.catcher.__exit__(None, None, None)


def adopt_after_pushes(pushes: PushCapture, warehouse, advance: float = 120.0) -> dict:
    """Deliver the pushes, then the delivery-status DAG's adoption step (what runs after a campaign)."""
    from every8d.campaign.adoption import adopt_pushed_batches

    pushes.deliver(warehouse, advance)
    return adopt_pushed_batches(warehouse)


def recorded_batches(warehouse, campaign_id: str) -> set[str]:
    """Batch ids the campaign's ledger knows: on its recipients, kept as stale, adopted from pushes."""
    found = set(
        warehouse.query_arrow(
            "SELECT DISTINCT batch_id FROM every8d_send_ledger "
            "WHERE campaign_id = ? AND batch_id IS NOT NULL",
            [campaign_id],
        )
        .column("batch_id")
        .to_pylist()
    )
    for table in ("every8d_send_stale_batches", "every8d_send_adopted_batches"):
        if warehouse.table_columns(table):
            found |= set(
                warehouse.query_arrow(f"SELECT batch_id FROM {table} WHERE campaign_id = ?", [campaign_id])
                .column("batch_id")
                .to_pylist()
            )
    return found


def awaiting_recipients(warehouse, campaign_id: str) -> set[tuple[str, str]]:
    """(number, text) of recipients whose chunk is ``awaiting_batch``: sent, batch id not adopted yet."""
    rows = warehouse.query_arrow(
        "SELECT l.mobile, l.text FROM every8d_send_ledger l JOIN every8d_send_chunks c "
        "ON c.campaign_id = l.campaign_id AND c.chunk = l.chunk WHERE l.campaign_id = ? "
        "AND c.state = 'awaiting_batch' AND l.state = 'sent_unconfirmed' AND l.batch_id IS NULL",
        [campaign_id],
    )
    return set(zip(rows.column("mobile").to_pylist(), rows.column("text").to_pylist(), strict=True))


def check_invariants(sandbox, warehouse, campaign_id: str, *, final=FINAL_STATES) -> dict:
    """The four promises after any failure, as figures (the soak counts them, tests assert them zero).

    ``duplicates``: (number, text) pairs the gateway holds more than once; ``lost``: ledger recipients
    the gateway holds no message for; ``unknown``: gateway pairs the ledger does not plan, plus ledger
    batch ids the gateway never issued; ``open``: recipients not in a final state; ``unrecorded``:
    batches the gateway issued that the ledger never recorded (neither answer, stale nor adopted);
    ``unadopted``: those of them holding only recipients of ``awaiting_batch`` chunks (expected where
    no pushes were delivered) or parked ``needs_review`` ones (a person settles them); any other
    unrecorded batch is a lost one.
    """
    ledger, _ = ledger_and_rejects(warehouse, campaign_id)
    pairs = Counter((m["mobile"], m["text"]) for m in sandbox.messages())
    planned = Counter(
        zip(ledger.column("mobile").to_pylist(), ledger.column("text").to_pylist(), strict=True)
    )
    states = Counter(ledger.column("state").to_pylist())
    issued = {b["batch_id"] for b in sandbox.batches()}
    recorded = {b for b in ledger.column("batch_id").to_pylist() if b}
    registered = (
        {
            r["batch_id"]
            for r in warehouse.query_arrow(
                "SELECT batch_id FROM every8d_batches WHERE campaign_id = ?", [campaign_id]
            ).to_pylist()
        }
        if ("batch_id" in [c.lower() for c in warehouse.table_columns("every8d_batches")])
        else set()
    )
    unrecorded = issued - recorded_batches(warehouse, campaign_id)
    parked = {
        (m, t)
        for m, t, state in zip(
            ledger.column("mobile").to_pylist(),
            ledger.column("text").to_pylist(),
            ledger.column("state").to_pylist(),
            strict=True,
        )
        if state == "needs_review"
    }
    waiting = awaiting_recipients(warehouse, campaign_id) | parked  # for a push, or for a person
    by_batch: dict = {}
    for m in sandbox.messages():
        by_batch.setdefault(m["batch_id"], set()).add((m["mobile"], m["text"]))
    unadopted = {b for b in unrecorded if by_batch.get(b) and by_batch[b] <= waiting}
    parked_batches = {b for b in unadopted if by_batch[b] <= parked}
    return {
        "unrecorded": len(unrecorded),
        "unadopted": len(unadopted),
        "parked_batches": len(parked_batches),
        "duplicates": sum(n - 1 for n in pairs.values() if n > 1),
        "lost": sum(1 for pair in planned if pair not in pairs),
        "unknown": sum(1 for pair in pairs if pair not in planned) + len((recorded | registered) - issued),
        "open": sum(n for state, n in states.items() if state not in final),
        "planned_twice": sum(n - 1 for n in planned.values() if n > 1),
        "needs_review": states.get("needs_review", 0),
        "states": dict(states),
    }


def assert_invariants(
    sandbox, warehouse, campaign_id: str, *, pushes: PushCapture | None = None, **kwargs
) -> dict:
    """Assert the promises.  With ``pushes`` they are delivered and adopted first, and every batch the
    gateway issued must be recorded (but a parked chunk's); without, an unrecorded batch must be an
    ``awaiting_batch`` or parked one."""
    if pushes is not None:
        adopt_after_pushes(pushes, warehouse)
    figures = check_invariants(sandbox, warehouse, campaign_id, **kwargs)
    keys = ["duplicates", "lost", "unknown", "open", "planned_twice"]
    broken = {k: figures[k] for k in keys if figures[k]}
    if pushes is not None and figures["unrecorded"] > figures["parked_batches"]:
        broken["unrecorded"] = figures["unrecorded"]
    if figures["unrecorded"] != figures["unadopted"]:
        broken["unrecorded_not_awaiting"] = figures["unrecorded"] - figures["unadopted"]
    assert not broken, f"broken promises {broken}; ledger states {figures['states']}"
    return figures
