"""The routes: ``GET /push`` (the gateway's status and reply pushes) and ``GET /health``.

Under ``airflow api-server`` they live below ``/every8d``; the standalone
server uses the same prefix by default, so the URL registered with EVERY8D is
``https://<host>/every8d/push?token=<token>`` either way.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from every8d.callbacks.deps import ReceiverDep, authorized_query, get_receiver
from every8d.callbacks.params import parse_pairs

router = APIRouter()


def json_response(body: dict, status_code: int = 200, headers: dict | None = None) -> Response:
    """A JSON response without FastAPI's encoder (the push route is the hot path)."""
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


async def receive_push(request: Request) -> Response:
    """Record one push durably, then answer 200 (a duplicate also gets 200: the gateway must stop).

    A plain Starlette endpoint calling the dependency functions itself: FastAPI's
    query parsing and dependency solving cost as much CPU as the whole rest of
    a push (about 100 µs of 200), and this is the route that takes the load.
    """
    if request.method != "GET":  # Starlette routes HEAD to GET endpoints: a HEAD must record nothing
        return json_response(
            {"error": "method_not_allowed", "detail": "pushes are GET requests"}, 405, {"Allow": "GET"}
        )
    receiver = await get_receiver(request)
    event = parse_pairs(await authorized_query(request, receiver))
    new = await receiver.record(event)
    return json_response({"status": "recorded", "duplicate": not new, "event_key": event.key})


router.add_route("/push", receive_push, methods=["GET"], include_in_schema=False)


@router.get("/health")
async def health(receiver: ReceiverDep) -> Response:
    """Liveness for load balancers; says whether pushes can be accepted, nothing more."""
    body = {"service": "every8d-pushes", "configured": receiver.configured}
    return json_response(body, 200 if receiver.configured else 503)
