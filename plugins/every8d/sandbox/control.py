"""The control API under ``/_sandbox``: what tests use to steer the gateway.

JSON in and out (NDJSON for the message dump, which may hold 100k+ rows).
Separate from the gateway endpoints so that the fast path never goes through
Starlette's router, and so that a user's staging gateway keeps the control
surface in one reviewable file.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, Router

from every8d.sandbox.state import GatewayError, PushConfig, iso_utc, normalize_mobile, parse_iso

if TYPE_CHECKING:
    from every8d.sandbox.app import SandboxApp

NDJSON_CHUNK = 2000


class BadRequest(Exception):
    pass


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("a JSON object is expected")
    return data


def _ok(payload: Any = None, status: int = 200) -> JSONResponse:
    return JSONResponse({"ok": True} if payload is None else payload, status_code=status)


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def build_control(sandbox: SandboxApp) -> Router:
    """Routes of the control API bound to one sandbox."""
    state = sandbox.state

    def clock_json() -> dict:
        now = state.clock.now()
        return {"now": iso_utc(now), "epoch": now, "frozen": state.clock.frozen}

    async def health(request: Request) -> Response:
        return _ok({"ok": True, "now": iso_utc(state.clock.now()), "batches": len(state.batches)})

    async def reset(request: Request) -> Response:
        sandbox.reset()
        return _ok()

    async def put_account(request: Request) -> Response:
        data = await _json(request)
        try:
            account = state.put_account(
                uid=str(data["uid"]),
                pwd=str(data["pwd"]),
                credit=data.get("credit", 0),
                international=data.get("international", False),
                status_columns=int(data.get("status_columns", 6)),
                empty_status_newline=data.get("empty_status_newline", True),
            )
        except KeyError as exc:
            raise BadRequest(f"missing {exc.args[0]!r}") from None
        return _ok(account.as_json())

    async def get_account(request: Request) -> Response:
        account = state.accounts.get(request.path_params["uid"])
        if account is None:
            return _error("unknown account", 404)
        return _ok(account.as_json())

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            data = await _json(request)
            if "freeze" in data:
                state.clock.freeze(bool(data["freeze"]))
            if data.get("set") is not None:
                state.clock.set(parse_iso(str(data["set"])))
            if data.get("advance") is not None:
                state.clock.advance(float(data["advance"]))
            sandbox.flush_pushes()
        return _ok(clock_json())

    async def outcomes(request: Request) -> Response:
        if request.method == "POST":
            data = await _json(request)
            state.outcomes = {str(k).lstrip("+"): int(v) for k, v in data.items()}
        return _ok(state.outcomes)

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.faults.clear()
        elif request.method == "POST":
            sandbox.faults.add(await _json(request))
        return _ok([f.as_json() for f in sandbox.faults.faults])

    async def recorded(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.requests.clear()
            return _ok()
        return _ok(sandbox.recorded_requests())

    async def record(request: Request) -> Response:
        data = await _json(request)
        sandbox.recording = bool(data.get("enabled", True))
        return _ok({"enabled": sandbox.recording})

    async def messages(request: Request) -> Response:
        batch_id = request.query_params.get("batch_id") or None
        uid = request.query_params.get("uid") or None
        if batch_id is not None:
            batch = state.batches.get(batch_id)
            batches = [batch] if batch is not None and (uid is None or batch.uid == uid) else []
        else:
            batches = [b for b in list(state.batches.values()) if uid is None or b.uid == uid]
        now = state.clock.now()

        async def lines():
            chunk = []
            for batch in batches:
                for m in batch.messages:
                    chunk.append(json.dumps(state.message_json(m, now), ensure_ascii=False))
                    if len(chunk) >= NDJSON_CHUNK:
                        yield ("\n".join(chunk) + "\n").encode()
                        chunk = []
            if chunk:
                yield ("\n".join(chunk) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def batches(request: Request) -> Response:
        uid = request.query_params.get("uid") or None
        return _ok([b.as_json() for b in state.batches.values() if uid is None or b.uid == uid])

    async def replies(request: Request) -> Response:
        data = await _json(request)
        batch_id = str(data.get("batch_id", ""))
        if batch_id not in state.batches:
            return _error("unknown batch", 404)
        try:
            mobile = normalize_mobile(str(data.get("mobile", "")).strip())
        except GatewayError:
            raise BadRequest("bad mobile number") from None
        at = parse_iso(str(data["at"])) if data.get("at") else None
        reply = state.add_reply(batch_id, mobile, str(data.get("text", "")), at)
        sandbox.flush_pushes()
        return _ok(
            {
                "batch_id": batch_id,
                "mobile": reply.mobile,
                "name": reply.name,
                "text": reply.text,
                "at": iso_utc(reply.at),
            }
        )

    async def push(request: Request) -> Response:
        data = await _json(request)
        uid = str(data.get("uid") or sandbox.default_uid)
        account = state.accounts.get(uid)
        if account is None:
            return _error("unknown account", 404)
        url = data.get("url")
        if url:
            account.push = PushConfig(
                url=str(url),
                duplicates=int(data.get("duplicates", 0)),
                reorder=bool(data.get("reorder", False)),
                retry_delay=float(data.get("retry_delay", 0.05)),
                attempts=int(data.get("attempts", 10)),
                timeout=float(data.get("timeout", 5.0)),
            )
        else:
            account.push = None
        if data.get("concurrency") is not None:
            sandbox.pushes.set_concurrency(int(data["concurrency"]))
        return _ok(account.as_json())

    async def pushes(request: Request) -> Response:
        return _ok(sandbox.pushes.log)

    async def drain(request: Request) -> Response:
        timeout = float(request.query_params.get("timeout", "10"))
        sandbox.flush_pushes()
        drained = await sandbox.pushes.drain(timeout)
        return _ok({"drained": drained, "pending": sandbox.pushes.pending}, 200 if drained else 408)

    routes = [
        ("/_sandbox/health", health, ["GET"]),
        ("/_sandbox/reset", reset, ["POST"]),
        ("/_sandbox/accounts", put_account, ["POST"]),
        ("/_sandbox/accounts/{uid}", get_account, ["GET"]),
        ("/_sandbox/clock", clock, ["GET", "POST"]),
        ("/_sandbox/outcomes", outcomes, ["GET", "POST"]),
        ("/_sandbox/faults", faults, ["GET", "POST", "DELETE"]),
        ("/_sandbox/requests", recorded, ["GET", "DELETE"]),
        ("/_sandbox/record", record, ["POST"]),
        ("/_sandbox/messages", messages, ["GET"]),
        ("/_sandbox/batches", batches, ["GET"]),
        ("/_sandbox/replies", replies, ["POST"]),
        ("/_sandbox/push", push, ["POST"]),
        ("/_sandbox/pushes", pushes, ["GET"]),
        ("/_sandbox/pushes/drain", drain, ["POST"]),
    ]
    return Router(
        [Route(path, _bad_input_is_400(endpoint), methods=methods) for path, endpoint, methods in routes]
    )


def _bad_input_is_400(endpoint):
    """Turn a caller's mistake into a JSON 400 instead of uvicorn's bare 500."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except (BadRequest, ValueError, TypeError, KeyError, ArithmeticError) as exc:
            return _error(str(exc) or type(exc).__name__)

    guarded.__name__ = endpoint.__name__
    return guarded
