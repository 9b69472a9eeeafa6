"""``every8d``: a small command line for operators of the EVERY8D gateway.

The same ``every8d`` Airflow connection the DAGs use (``--conn-id``, from an
``AIRFLOW_CONN_*`` variable or the metadata DB), or ``--url``/``--uid`` with the
password from ``$EVERY8D_PASSWORD`` or a prompt: never from an argument, where
shell history and ``ps`` would keep it.

Exit codes: 0 ok, 2 usage error, 3 the gateway refused (its code and meaning
are printed), 4 transport failure or unknown outcome.  No tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from every8d.client import Every8dClient

EXIT_OK, EXIT_USAGE, EXIT_GATEWAY, EXIT_TRANSPORT = 0, 2, 3, 4
PASSWORD_ENV = "EVERY8D_PASSWORD"
PASSWORD_HINT = f"the password is never an argument: set {PASSWORD_ENV} or type it at the prompt"
TAIWAN_CODE = "+886"


class UsageError(Exception):
    """Bad input or configuration: exit code 2."""


class GatewayRefused(Exception):
    """The gateway answered, but did not do what was asked (nothing to cancel, unsent messages): exit 3."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments"):
            # argparse would repeat them, and one may be a password typed as an option
            message = f"unrecognized arguments (not repeated here); {PASSWORD_HINT}"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# -- connection -----------------------------------------------------------------------------


def _password() -> str:
    password = os.environ.get(PASSWORD_ENV, "")
    if password:
        return password
    if not sys.stdin.isatty():
        raise UsageError(f"no password: set {PASSWORD_ENV} (no terminal to prompt on)")
    import getpass

    password = getpass.getpass("EVERY8D password: ")
    if not password:
        raise UsageError("no password given")
    return password


def make_client(args: argparse.Namespace) -> Every8dClient:
    """The client for ``--url``/``--uid`` (no Airflow needed), else for the Airflow connection
    ``--conn-id``."""
    if args.url or args.uid:
        if not (args.url and args.uid):
            raise UsageError("--url and --uid go together")
        from every8d.client import connect

        return connect(args.url, args.uid, _password())
    # Like `airflow connections get`: environment variables and secrets backends, then the metadata DB.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    from every8d.hooks.every8d import Every8dHook

    return Every8dHook(args.conn_id).get_client()


# -- output -----------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if value is None else str(value)) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _iso(value: datetime | None) -> str:
    """UTC ISO text, as in the warehouse tables; the gateway's Taipei times are converted."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else ""


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return _iso(value)
    raise TypeError(type(value).__name__)


def _print_json(document: Any) -> None:
    print(json.dumps(document, ensure_ascii=False, indent=2, default=_json_default))


# -- verbs ------------------------------------------------------------------------------------


def cmd_credit(args: argparse.Namespace) -> int:
    print(make_client(args).get_credit())
    return EXIT_OK


def _numbers(raw: Sequence[str]) -> list[str]:
    from every8d.notifications.recipients import split_numbers
    from every8d.phones import normalize_for_send

    numbers = []
    for position, value in enumerate(split_numbers(raw), start=1):
        number, reason, detail = normalize_for_send(value, allow_international=True)  # priced as such below
        if number is None:
            why = "not a valid phone number" if reason == "invalid_number" else detail
            raise UsageError(f"number {position} is {why}")
        numbers.append(number)
    if not numbers:
        raise UsageError("give at least one number")
    return numbers


def _schedule_time(text: str | None) -> datetime | None:
    """``--at`` as an aware datetime; a time without an offset is Taiwan time, as the gateway's own."""
    if not text:
        return None
    from zoneinfo import ZoneInfo

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            "--at must be an ISO time, e.g. 2026-12-01T09:30 (Taiwan time) or with an offset"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo("Asia/Taipei"))


def cmd_send(args: argparse.Namespace) -> int:
    from every8d.pricing import sms_length, sms_points

    message = args.message
    if not message.strip():
        raise UsageError("the message is empty")
    numbers = _numbers(args.numbers)
    schedule_at = _schedule_time(args.at)
    if args.dry_run:
        rows, total = [], Decimal(0)
        for number in numbers:
            points = sms_points(message, international=not number.startswith(TAIWAN_CODE))
            total += points
            rows.append((number, "TW" if number.startswith(TAIWAN_CODE) else "international", points))
        print(_table(("NUMBER", "ROUTE", "POINTS"), rows))
        print(
            f"total: {total} point(s) for {len(numbers)} number(s), {sms_length(message)} character(s) each"
        )
        print("dry run: nothing was sent")
        return EXIT_OK
    result = make_client(args).send_sms(message, numbers, subject=args.subject, schedule_at=schedule_at)
    print(
        f"batch {result.batch_id}: {result.sent} sent, {result.cost} point(s), {result.credit} point(s) left"
    )
    if result.unsent:
        raise GatewayRefused(f"{result.unsent} message(s) not sent: not enough credit (status 301)")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from every8d.client.statuses import status_info

    records = list(make_client(args).iter_delivery_status(args.batch_id, mms=args.mms))
    if args.json:
        _print_json(
            {
                "batch_id": args.batch_id,
                "messages": [
                    {
                        "mobile": r.mobile,
                        "name": r.name,
                        "status": r.status,
                        "meaning": r.info.meaning,
                        "final": r.info.final,
                        "sent_at": r.sent_at,
                        "points": r.points,
                        "received_at": r.received_at,
                    }
                    for r in records
                ],
            }
        )
        return EXIT_OK
    if not records:
        print(f"batch {args.batch_id}: no messages")
        return EXIT_OK
    rows = [
        (
            r.mobile,
            r.name,
            r.status,
            status_info(r.status).meaning,
            _iso(r.sent_at),
            r.points,
            _iso(r.received_at),
        )
        for r in records
    ]
    print(_table(("MOBILE", "NAME", "STATUS", "MEANING", "SENT_AT", "POINTS", "RECEIVED_AT"), rows))
    groups = Counter(r.info.group for r in records)
    print(
        f"{len(records)} message(s): "
        + ", ".join(f"{count} {group}" for group, count in sorted(groups.items()))
    )
    return EXIT_OK


def cmd_replies(args: argparse.Namespace) -> int:
    replies = list(make_client(args).iter_replies(args.batch_id))
    if args.json:
        _print_json(
            {
                "batch_id": args.batch_id,
                "replies": [
                    {"mobile": r.mobile, "name": r.name, "content": r.content, "replied_at": r.replied_at}
                    for r in replies
                ],
            }
        )
        return EXIT_OK
    if not replies:
        print(f"batch {args.batch_id}: no replies")
        return EXIT_OK
    rows = [(_iso(r.replied_at), r.mobile, r.name, " ".join(r.content.split())) for r in replies]
    print(_table(("REPLIED_AT", "MOBILE", "NAME", "CONTENT"), rows))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    result = make_client(args).erase_booking(args.batch_id, mms=args.mms)
    if not result.found:
        raise GatewayRefused(
            f"nothing cancelled: the gateway found no scheduled message in batch {args.batch_id}"
        )
    print(
        f"batch {args.batch_id}: {result.deleted} message(s) cancelled, {result.refunded} point(s) refunded"
    )
    return EXIT_OK


def _query_database(args: argparse.Namespace) -> str:
    """The DuckDB file to query: ``--db``, else the analysts' file, else (``--warehouse``) the warehouse
    file."""
    from every8d.tracking.analyst import analyst_db_path
    from every8d.warehouse import DUCKDB_SCHEME, default_warehouse_target

    if args.db:
        path = args.db
    elif args.warehouse:
        target = default_warehouse_target()
        if not target.startswith(DUCKDB_SCHEME):
            raise UsageError(
                f"the warehouse is not a DuckDB file ({target.split(':', 1)[0]}): query it with its "
                "own client"
            )
        path = "/" + target[len(DUCKDB_SCHEME) :].lstrip("/")
    else:
        analyst = analyst_db_path(None)
        if analyst is None:
            raise UsageError("no analysts' DuckDB file is configured: give --db PATH (or --warehouse)")
        path = str(analyst)
    if not os.path.exists(path):
        raise UsageError(
            f"{path} does not exist yet (the status DAG's export_parquet task writes the analysts' file)"
        )
    return path


def cmd_query(args: argparse.Namespace) -> int:
    """One SQL statement on a DuckDB file opened read-only for just this command, then closed."""
    import duckdb

    path = _query_database(args)
    sql = " ".join(args.sql).strip()
    if sql == "-":
        sql = sys.stdin.read()
    if not sql:
        raise UsageError("no SQL given")
    try:
        with duckdb.connect(path, read_only=True) as connection:
            result = connection.execute(sql)
            headers = [column[0] for column in result.description or []]
            rows = result.fetchmany(args.limit + 1) if args.limit else result.fetchall()
    except duckdb.IOException as error:
        raise UsageError(f"could not open {path}: {error}") from None
    except duckdb.Error as error:
        raise UsageError(f"the query failed: {str(error).splitlines()[0]}") from None
    truncated = bool(args.limit) and len(rows) > args.limit
    rows = rows[: args.limit] if args.limit else rows
    if args.format == "json":
        _print_json([dict(zip(headers, row, strict=True)) for row in rows])
    elif args.format == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(headers)
        writer.writerows(
            [[_json_default(v) if isinstance(v, (Decimal, datetime)) else v for v in row] for row in rows]
        )
    else:
        print(_table(headers, [[_iso(v) if isinstance(v, datetime) else v for v in row] for row in rows]))
    if truncated:
        print(f"(first {args.limit} rows; --limit 0 for all)", file=sys.stderr)
    return EXIT_OK


def cmd_sandbox(argv: Sequence[str]) -> int:
    """Run the local sandbox gateway in the foreground (``python -m every8d.sandbox``'s options)."""
    from every8d.sandbox.__main__ import main as sandbox_main

    try:
        sandbox_main(list(argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (EXIT_OK if stop.code is None else EXIT_USAGE)
    return EXIT_OK


# -- parser and main ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from every8d.hooks import DEFAULT_CONN_NAME

    connection = _Parser(add_help=False)
    group = connection.add_argument_group("gateway connection")
    group.add_argument(
        "--conn-id", default=DEFAULT_CONN_NAME, help="Airflow connection id (default: %(default)s)"
    )
    group.add_argument("--url", help="gateway base URL instead of a connection (with --uid)")
    group.add_argument(
        "--uid", help=f"account (UID) for --url; the password comes from ${PASSWORD_ENV} or a prompt"
    )

    parser = _Parser(
        prog="every8d", description="Operate the EVERY8D SMS gateway: credit, send, status, cancel."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    verbs.add_parser("credit", parents=[connection], help="points left on the account").set_defaults(
        run=cmd_credit
    )

    send = verbs.add_parser("send", parents=[connection], help="send one SMS to one or more numbers")
    send.add_argument("-m", "--message", required=True, help="the text")
    send.add_argument(
        "numbers", nargs="+", metavar="NUMBER", help="numbers (0912345678, +886912345678, or comma-separated)"
    )
    send.add_argument(
        "--at", help="schedule time, ISO (no offset = Taiwan time); cancel it with `every8d cancel`"
    )
    send.add_argument("--subject", default="", help="a note kept in the account's records (not sent)")
    send.add_argument(
        "--dry-run", action="store_true", help="show points per number and the total; send nothing"
    )
    send.set_defaults(run=cmd_send)

    status = verbs.add_parser("status", parents=[connection], help="delivery status of a batch")
    status.add_argument("batch_id", metavar="BATCH_ID")
    status.add_argument("--mms", action="store_true", help="the batch is an MMS batch")
    status.add_argument("--json", action="store_true", help="JSON instead of a table")
    status.set_defaults(run=cmd_status)

    replies = verbs.add_parser("replies", parents=[connection], help="replies to a batch")
    replies.add_argument("batch_id", metavar="BATCH_ID")
    replies.add_argument("--json", action="store_true", help="JSON instead of a table")
    replies.set_defaults(run=cmd_replies)

    cancel = verbs.add_parser(
        "cancel", parents=[connection], help="cancel a scheduled batch and get its points back"
    )
    cancel.add_argument("batch_id", metavar="BATCH_ID")
    cancel.add_argument("--mms", action="store_true", help="the batch is an MMS batch")
    cancel.set_defaults(run=cmd_cancel)

    query = verbs.add_parser(
        "query",
        help=(
            "SQL on the analysts' DuckDB file (never the pipeline's lock), opened and closed for this command"
        ),
    )
    query.add_argument("sql", nargs="+", metavar="SQL", help="one SQL statement ('-' reads it from stdin)")
    where = query.add_mutually_exclusive_group()
    where.add_argument("--db", help="a DuckDB file (default: the analysts' file beside [every8d] warehouse)")
    where.add_argument(
        "--warehouse",
        action="store_true",
        help="the warehouse file itself, read-only: waits for and briefly blocks the pipeline",
    )
    query.add_argument("--format", choices=("table", "csv", "json"), default="table")
    query.add_argument("--limit", type=int, default=200, help="rows to print (0: all; default %(default)s)")
    query.set_defaults(run=cmd_query)

    verbs.add_parser(
        "sandbox",
        help="run the local sandbox gateway (every8d sandbox --help for its options)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; return the exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:  # its options belong to the sandbox's own parser
        return cmd_sandbox(argv[1:])
    args = build_parser().parse_args(argv)
    # Airflow logs to stdout; urllib3's retry notices would mix with tables and JSON there.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    from every8d.errors import Every8dError, GatewayError

    try:
        return args.run(args)
    except UsageError as error:
        print(f"every8d: {error}", file=sys.stderr)
        return EXIT_USAGE
    except GatewayRefused as error:
        print(f"every8d: {error}", file=sys.stderr)
        return EXIT_GATEWAY
    except GatewayError as error:
        print(
            f"every8d: the gateway refused ({error.endpoint}): code {error.code}: {error.meaning}",
            file=sys.stderr,
        )
        return EXIT_GATEWAY
    except Every8dError as error:  # transport failures and sends whose outcome is unknown
        print(f"every8d: {error}", file=sys.stderr)
        return EXIT_TRANSPORT
    except KeyboardInterrupt:
        print("every8d: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `every8d status ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        if type(error).__name__ == "AirflowNotFoundException":
            print(
                f"every8d: connection {args.conn_id!r} is not defined: "
                f"set AIRFLOW_CONN_{args.conn_id.upper()}, add it with `airflow connections add`, "
                "or use --url and --uid",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if isinstance(error, ValueError):  # the client's input checks (empty text, missing login...)
            print(f"every8d: {error}", file=sys.stderr)
            return EXIT_USAGE
        print(f"every8d: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_TRANSPORT
