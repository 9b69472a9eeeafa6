"""``python -m every8d.callbacks``: serve the push receiver, or ``... flush`` the journal.

``serve`` (the default) refuses to start without a strong token (exit code 2)
rather than run an open endpoint; ``flush`` is the cron-friendly twin of the
``every8d_push_flush`` DAG for hosts where the journal is not on an Airflow worker.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from every8d.callbacks.server import DEFAULT_PREFIX


def _serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m every8d.callbacks", description="Serve the push receiver."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8780, help="0 picks a free port")
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help="path prefix of the routes (default /every8d)"
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="trust X-Forwarded-For from these proxies (then the allowlist sees the real client)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    args = parser.parse_args(argv)
    from every8d.callbacks.app import create_app
    from every8d.callbacks.server import bind, serve
    from every8d.callbacks.settings import PushSettings, SettingsError

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = PushSettings.from_env()
    except SettingsError as error:
        print(f"every8d push receiver: refusing to start: {error}", file=sys.stderr)
        return 2
    sock, url = bind(args.host, args.port)
    started = serve(
        create_app(settings, prefix=args.prefix),
        sock,
        url,
        log_level=args.log_level,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    return 0 if started else 1


def _flush(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m every8d.callbacks flush", description="Move journaled pushes into the warehouse."
    )
    parser.add_argument(
        "--warehouse", default=None, help="open_warehouse target (default: [every8d] warehouse)"
    )
    parser.add_argument("--journal", default=None, help="journal file (default: [every8d] push_journal)")
    args = parser.parse_args(argv)
    from every8d.callbacks.flush import flush_journal

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(json.dumps(asdict(flush_journal(args.warehouse, journal_path=args.journal))))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "flush":
        return _flush(argv[1:])
    if argv and argv[0] == "serve":
        argv = argv[1:]
    return _serve(argv)


if __name__ == "__main__":
    sys.exit(main())
