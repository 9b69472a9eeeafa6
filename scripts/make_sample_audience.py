"""Write include/sample_audience.csv: a few thousand members with the usual mess.

Deterministic (seeded), so the demo's figures are the same on every machine:
about 3,000 rows, a few dozen invalid numbers, duplicates written in another
format, and numbers ending in 97/98/99, which the sandbox fails on purpose.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import phonenumbers

OUT = Path(__file__).resolve().parent.parent / "include" / "sample_audience.csv"
SURNAMES = "陳林黃張李王吳劉蔡楊許鄭謝洪郭邱曾廖賴徐"
GIVEN = ["志明", "淑芬", "家豪", "雅婷", "俊傑", "怡君", "冠宇", "佳穎", "承恩", "美玲", "Amy", "Kevin"]
TIERS = ["一般", "銀卡", "金卡", "白金"]
INVALID = ["0912-345", "12345", "0223456789", "+886 2 2345 6789", "not a number", "09123456789012", ""]


def main() -> None:
    rng = random.Random(20261125)
    rows = []
    used: set[str] = set()
    while len(rows) < 3000:
        number = f"09{rng.randrange(10**8):08d}"
        parsed = phonenumbers.parse(number, "TW")
        if number in used or phonenumbers.number_type(parsed) != phonenumbers.PhoneNumberType.MOBILE:
            continue
        used.add(number)
        rows.append(
            {
                "mobile": number,
                "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
                "tier": rng.choice(TIERS),
                "points": str(rng.randrange(0, 5000)),
            }
        )
    for index in range(40):  # invalid numbers
        rows[rng.randrange(len(rows))]["mobile"] = INVALID[index % len(INVALID)]
    for _ in range(60):  # the same member again, number written differently
        source = dict(rows[rng.randrange(len(rows))])
        if source["mobile"].startswith("09") and len(source["mobile"]) == 10:
            source["mobile"] = (
                "+886 " + source["mobile"][1:4] + " " + source["mobile"][4:7] + " " + source["mobile"][7:]
            )
            rows.insert(rng.randrange(len(rows)), source)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["mobile", "name", "tier", "points"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
