"""A short seeded soak: random faults on every endpoint, kills, freezes and 2-3 runners per campaign.

The long one is ``bench/campaign_soak.py`` (300 campaigns by default); this runs its ``--quick`` mode
with a seed printed in the output, so a failure can be replayed with ``--seed``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.timeout(600)
def test_a_short_soak_keeps_every_promise():
    seed = int(os.environ.get("EVERY8D_SOAK_SEED") or random.SystemRandom().randrange(1_000_000))
    print(
        f"campaign soak seed {seed} (replay: .venv/bin/python bench/campaign_soak.py --quick --seed {seed})"
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "campaign_soak.py"), "--quick", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["seed"] == seed and figures["campaigns"] == 4
    assert figures["faults"] + figures["kills"] + figures["freezes"] > 0  # it did attack
    broken = {k: figures[k] for k in ("duplicates", "lost", "open", "unknown", "unrecorded") if figures[k]}
    assert not broken, f"seed {seed}: {broken}; {figures['broken']}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, done.stderr[-3000:]
