"""Where the provider keeps its files by default: ``$AIRFLOW_HOME/every8d/`` (``~/airflow`` when unset)."""

from __future__ import annotations

import os
from pathlib import Path


def provider_home() -> Path:
    """``$AIRFLOW_HOME/every8d``, read at call time (tests and workers set ``AIRFLOW_HOME`` late)."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "every8d"


def default_path(*parts: str) -> Path:
    """A file or folder under :func:`provider_home`, e.g. ``default_path("reports")``."""
    return provider_home().joinpath(*parts)
