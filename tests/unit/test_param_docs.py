"""Every argument of a public operator, sensor, trigger, notifier and hook has a ``:param`` line."""

from __future__ import annotations

import inspect
import re

import pytest

from every8d.hooks.every8d import Every8dHook
from every8d.notifications.every8d import Every8dNotifier
from every8d.operators.cancel import Every8dCancelCampaignOperator
from every8d.operators.send import Every8dSendMmsOperator, Every8dSendSmsOperator
from every8d.sensors.batch import Every8dBatchSensor
from every8d.triggers.batch import Every8dBatchTrigger

PUBLIC = [
    Every8dSendSmsOperator,
    Every8dSendMmsOperator,
    Every8dCancelCampaignOperator,
    Every8dBatchSensor,
    Every8dBatchTrigger,
    Every8dNotifier,
    Every8dHook,
]


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_every_argument_is_documented(cls):
    documented = set(re.findall(r":param (\w+):", (cls.__doc__ or "") + (cls.__init__.__doc__ or "")))
    arguments = [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    assert arguments and not [a for a in arguments if a not in documented]
