"""``requires-python`` matches the code: nothing newer than the floor, and the floor is not lower than
used."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted((REPO / "plugins" / "every8d").rglob("*.py")) + sorted((REPO / "dags").glob("*.py"))
# Standard library names the code relies on, by the release that added them.
NEEDS_311 = (
    re.compile(r"\bfrom datetime import\b[^\n]*\bUTC\b"),
    re.compile(r"\.get_identifiers\(\)"),
    re.compile(r"\bimport tomllib\b"),
)
NEWER_THAN_311 = (
    re.compile(r"\bitertools\.batched\b|\bfrom itertools import\b[^\n]*\bbatched\b"),
    re.compile(r"\bfrom typing import\b[^\n]*\boverride\b"),
)


def _floor() -> tuple[int, int]:
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec).groups()
    return int(major), int(minor)


def test_the_floor_is_what_the_code_needs():
    floor = _floor()
    uses_311 = [p.name for p in SOURCES if any(r.search(p.read_text()) for r in NEEDS_311)]
    assert uses_311, "the 3.11 names this test looks for are gone: lower the floor or update the test"
    assert floor == (3, 11)
    assert sys.version_info[:2] >= floor


def test_no_module_uses_syntax_or_names_newer_than_the_floor():
    floor = _floor()
    for path in SOURCES:
        text = path.read_text()
        ast.parse(text, filename=str(path), feature_version=floor)  # a SyntaxError names file and line
        assert not [r.pattern for r in NEWER_THAN_311 if r.search(text)], path
