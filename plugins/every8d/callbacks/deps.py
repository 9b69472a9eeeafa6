"""Dependencies of the routes, as ``Annotated`` aliases (async: a sync one costs a thread hop).

The order is the order of trust: configured at all (503), client network
(403), token (401); only then are the parameters read.  The push route calls
these functions directly (see :func:`every8d.callbacks.router.receive_push`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from every8d.callbacks.params import split_query, token_values
from every8d.callbacks.receiver import PushReceiver

STATE_KEY = "every8d_push_receiver"


async def get_receiver(request: Request) -> PushReceiver:
    return getattr(request.app.state, STATE_KEY)


ReceiverDep = Annotated[PushReceiver, Depends(get_receiver)]


async def authorized_query(request: Request, receiver: ReceiverDep) -> list[tuple[bytes, bytes]]:
    """The push's raw query pairs, once the client and its token passed the gate."""
    receiver.require_settings()
    receiver.check_client(request.client.host if request.client else None)
    pairs = split_query(request.scope.get("query_string", b""))
    receiver.check_token(token_values(pairs))
    return pairs
