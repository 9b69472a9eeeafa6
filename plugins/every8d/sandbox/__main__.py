"""``python -m every8d.sandbox``: run the sandbox gateway in the foreground.

Binds its socket itself, so ``--port 0`` picks a free port without a race,
and prints one ready line (``EVERY8D sandbox listening on http://HOST:PORT``)
on stdout once requests are served: :class:`~every8d.sandbox.server.SandboxServer`
waits for that line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import uvicorn

from every8d.child_server import bind_listening_socket
from every8d.sandbox import READY_PREFIX
from every8d.sandbox.app import DEFAULT_CREDIT, DEFAULT_PWD, DEFAULT_UID, SandboxApp
from every8d.sandbox.faults import FaultInjectingProtocol
from every8d.sandbox.state import PushConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m every8d.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--uid", default=DEFAULT_UID)
    parser.add_argument("--pwd", default=DEFAULT_PWD)
    parser.add_argument("--credit", default=str(DEFAULT_CREDIT))
    parser.add_argument(
        "--international", action="store_true", help="enable international SMS on the account"
    )
    parser.add_argument(
        "--frozen-clock", action="store_true", help="freeze the clock (move it with the control API)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not keep gateway requests in memory")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between background push passes")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="answer each gateway request after this delay (a stand-in for a remote gateway)",
    )
    parser.add_argument(
        "--push-url",
        default="",
        help="push the default account's status changes and replies here from the start "
        "(e.g. http://airflow-apiserver:8080/every8d/push?token=...); default: $EVERY8D_SANDBOX_PUSH_URL",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sock, url = bind_listening_socket(args.host, args.port)

    def ready() -> None:
        print(READY_PREFIX + url, flush=True)

    app = SandboxApp(
        uid=args.uid,
        pwd=args.pwd,
        credit=args.credit,
        international=args.international,
        frozen_clock=args.frozen_clock,
        record=not args.no_record,
        tick=args.tick,
        on_ready=ready,
        latency=args.latency_ms / 1000,
    )
    push_url = args.push_url or os.environ.get("EVERY8D_SANDBOX_PUSH_URL", "")
    if push_url.strip():
        app.state.accounts[args.uid].push = PushConfig(url=push_url.strip())
    config = uvicorn.Config(
        app,
        http=FaultInjectingProtocol,
        loop="uvloop",
        lifespan="on",
        ws="none",
        access_log=False,
        log_level=args.log_level,
        timeout_graceful_shutdown=3,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; with no-op handlers
    # underneath, a requested stop ends with exit code 0 instead of "killed by signal".
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    server.run(sockets=[sock])
    sys.exit(0 if server.started else 1)


if __name__ == "__main__":
    main()
