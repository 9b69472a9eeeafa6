"""The Arrow types every table and column of the provider shares, defined once.

Times are UTC microseconds everywhere (the gateway's Taipei times are converted
on the way in); points are the gateway's credits with two decimals, exact.
"""

from __future__ import annotations

import pyarrow as pa

#: An instant: microseconds, UTC.  Tables, listings, plans and ledgers all use it.
UTC_TIME = pa.timestamp("us", tz="UTC")
#: Gateway credits (points), exact to the cent: ``decimal(12, 2)``.
POINTS = pa.decimal128(12, 2)
