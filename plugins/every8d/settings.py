"""The provider's configuration, read in one place: the ``[every8d]`` section of Airflow's config.

Airflow maps ``AIRFLOW__EVERY8D__<KEY>`` environment variables onto the section
itself (and ``_CMD`` / ``_SECRET`` variants), so in an Airflow process :func:`get`
asks Airflow's ``conf``; the push receiver, which runs without Airflow, reads
the same names and ``airflow.cfg`` without it.  The older ``EVERY8D_<KEY>`` names still work for one
release, with a :class:`DeprecationWarning`.  :data:`OPTIONS` is also what
``get_provider_info()["config"]`` declares, so the docs, the provider info and
the code cannot drift.  This module imports nothing heavy: provider info reads it.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass

SECTION = "every8d"
LEGACY_PREFIX = "EVERY8D_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", "none", ""})


@dataclass(frozen=True)
class Option:
    """One ``[every8d]`` option.  ``default`` None: derived at run time (see ``description``)."""

    type: str
    description: str
    default: str | None = None
    example: str | None = None
    sensitive: bool = False  # hidden by ``airflow config list``, as Airflow's own secrets are


OPTIONS: dict[str, Option] = {
    "warehouse": Option(
        "string",
        "Warehouse target: a ``duckdb:///`` path, a Postgres/MySQL connection id or URL. "
        "Default: a DuckDB file under ``$AIRFLOW_HOME/every8d/``.",
        example="postgres_default",
    ),
    "duckdb_memory_limit": Option("string", "DuckDB's memory limit per connection.", "512MB", "1GB"),
    "duckdb_threads": Option(
        "integer",
        "DuckDB's threads per connection. Default: DuckDB's own, one per core; ``1`` on a small host "
        "where the status sync's fetch threads share the cores (faster and ~15 MB less there).",
        example="1",
    ),
    "parquet_root": Option(
        "string",
        "Folder or object-store URL of the Parquet copy; ``none`` turns it off. "
        "Default: ``$AIRFLOW_HOME/every8d/parquet``.",
        example="s3://bucket/every8d",
    ),
    "parquet_conn_id": Option(
        "string", "Connection for an object-store ``parquet_root``.", example="aws_default"
    ),
    "staging_root": Option(
        "string", "Folder for campaign staging files. Default: ``$AIRFLOW_HOME/every8d/staging``."
    ),
    "report_dir": Option(
        "string", "Folder of the analytics report. Default: ``$AIRFLOW_HOME/every8d/reports``."
    ),
    "analyst_db": Option(
        "string",
        "DuckDB file for analysts. Default: ``<warehouse>.analyst.duckdb`` beside a DuckDB warehouse file.",
    ),
    "sql_dir": Option(
        "string", "Folder of changed view SQL. Default: the ``sql/`` folder shipped in the package."
    ),
    "alert_ledger": Option(
        "string",
        "SQLite file of the notifier's dedupe ledger. Default: ``$AIRFLOW_HOME/every8d/alerts.sqlite3``.",
    ),
    "opt_out_keywords": Option(
        "string",
        "Comma-separated reply keywords that opt a number out. Default: the built-in list.",
        example="STOP,退訂",
    ),
    "push_token": Option(
        "string", "Token(s) the push receiver accepts, comma-separated while rotating.", sensitive=True
    ),
    "push_token_file": Option(
        "string",
        "File holding the push token(s), used when ``push_token`` is empty.",
        example="/run/secrets/every8d_push_token",
    ),
    "push_allowed_cidrs": Option(
        "string",
        "Client networks allowed to push, comma-separated; empty allows all.",
        example="203.0.113.0/24",
    ),
    "push_journal": Option(
        "string",
        "SQLite journal the receiver writes and the flush reads. "
        "Default: ``$AIRFLOW_HOME/every8d/push-journal.sqlite3``.",
    ),
    "push_record_timeout": Option("float", "Seconds a push waits for its journal write before a 503.", "5.0"),
    "push_busy_timeout": Option("float", "Seconds SQLite waits for another writer's lock.", "2.0"),
    "status_pool": Option("string", "Airflow pool of the delivery-status DAG's tasks.", "default_pool"),
    "status_page_concurrency": Option("integer", "Listing pages fetched at once per batch."),
    "status_with_record_ids": Option(
        "boolean", "Ask the gateway for record ids in status listings.", "False"
    ),
    "status_shards": Option("integer", "Task instances polling per status run at most."),
    "status_batch_concurrency": Option("integer", "Batches each status shard fetches at once."),
    "status_merge_group": Option("integer", "Batches merged per transaction at most."),
}

_warned: set[str] = set()


def env_name(key: str) -> str:
    """``AIRFLOW__EVERY8D__<KEY>``: the option's environment variable, Airflow's way."""
    return f"AIRFLOW__{SECTION.upper()}__{key.upper()}"


def legacy_name(key: str) -> str:
    """``EVERY8D_<KEY>``: the name the option had before the ``[every8d]`` section."""
    return LEGACY_PREFIX + key.upper()


def _airflow(key: str) -> str:
    """What Airflow's config says: its ``conf`` when this process already loaded it.

    The push receiver and the flush run outside Airflow, where importing
    ``airflow.configuration`` would cost seconds a start: there the environment
    name is read, then the ``[every8d]`` section of ``airflow.cfg`` as plain text.
    """
    conf_module = sys.modules.get("airflow.configuration")
    if conf_module is not None:
        return conf_module.conf.get(SECTION, key, fallback="") or ""
    value = os.environ.get(env_name(key), "")
    if value:
        return value
    return _config_file().get(key, "")


def _config_file() -> dict[str, str]:
    import configparser

    path = os.environ.get("AIRFLOW_CONFIG") or os.path.join(
        os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "airflow.cfg"
    )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return {}  # Airflow itself reports a broken airflow.cfg
    return dict(parser[SECTION]) if parser.has_section(SECTION) else {}


def get(key: str) -> str:
    """The option's text, stripped; ``""`` when unset and without a default (callers derive one).

    An ``AIRFLOW__EVERY8D__*`` variable wins; else an old ``EVERY8D_*`` one (an
    environment variable beats ``airflow.cfg``, as in Airflow, and Airflow's conf
    would answer with the declared default and hide it); else Airflow's config.
    """
    if key not in OPTIONS:
        raise KeyError(f"[{SECTION}] has no option {key!r}")
    new_name = env_name(key)
    if not any(os.environ.get(new_name + suffix) for suffix in ("", "_CMD", "_SECRET")):
        legacy = os.environ.get(legacy_name(key), "").strip()
        if legacy:
            if legacy_name(key) not in _warned:
                _warned.add(legacy_name(key))
                warnings.warn(
                    f"{legacy_name(key)} is deprecated and goes in the next release: set "
                    f"{new_name} or [{SECTION}] {key} instead",
                    DeprecationWarning,
                    stacklevel=2,
                )
            return legacy
    return _airflow(key).strip() or (OPTIONS[key].default or "")


def parse_bool(value: object) -> bool:
    """``1/true/yes/on`` and ``0/false/no/off/none/""`` (any case, Jinja's ``"True"`` too); else an error."""
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {text[:20]!r} (use true or false)")


def provider_config() -> dict:
    """The ``config`` entry of ``get_provider_info()``: the section as Airflow providers declare it."""
    return {
        SECTION: {
            "description": (
                "The EVERY8D provider: where it keeps its data, the push receiver, the status DAG."
            ),
            "options": {
                key: {
                    "description": option.description,
                    "version_added": "0.1.0",
                    "type": option.type,
                    "example": option.example,
                    "default": option.default,
                    **({"sensitive": True} if option.sensitive else {}),
                }
                for key, option in OPTIONS.items()
            },
        }
    }
