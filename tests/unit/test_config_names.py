"""What users read and run names the ``[every8d]`` options, never the deprecated ``EVERY8D_<KEY>`` variables.

The old names work for one release with a warning (tests/unit/test_provider_settings.py);
docs, the demo, the benchmarks, the DAGs, the code and the tests that tell someone
to set an option use ``AIRFLOW__EVERY8D__<KEY>`` or ``[every8d] <key>``.  The old
names stay where the deprecation is described (one paragraph of
docs/configuration.md) and in the tests of the deprecation itself.
``docker-compose.yaml``'s ``.env`` variables are compose's, not options (compose
hands them on as ``AIRFLOW__EVERY8D__*``): they may be named where compose or
``.env`` is the subject, even the one spelled like an old option name.
"""

from __future__ import annotations

import re
from pathlib import Path

from every8d import settings

REPO = Path(__file__).resolve().parents[2]
LEGACY = {settings.legacy_name(key) for key in settings.OPTIONS}
ANY_NAME = re.compile(r"(?<![A-Za-z0-9_])EVERY8D_[A-Z0-9_]+")  # not AIRFLOW__EVERY8D__*, *_CONN_EVERY8D_*
NEW_NAME = re.compile(r"AIRFLOW__EVERY8D__([A-Z0-9_]+)")
SECTION_KEY = re.compile(r"\[every8d\][ \t]+`?([a-z][a-z0-9_]*[a-z0-9])\b(?![*_])")

SCANNED_FILES = ["README.md", "docker-compose.yaml", "Dockerfile", "Makefile", "pyproject.toml", ".ci/run"]
SCANNED_FOLDERS = ["docs", "scripts", "dags", "bench", "plugins", "tests", "docker", "include"]
SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".conf", ".sh", ".sql", ".txt", ".html"}

#: The paragraph of docs/configuration.md that describes the deprecation (it starts so).
DEPRECATION_PARAGRAPH = ("docs/configuration.md", "**Old names.**")
#: The tests of the deprecation itself set the old names on purpose.
DEPRECATION_TESTS = {"tests/unit/test_provider_settings.py"}


def scanned() -> list[Path]:
    files = [REPO / name for name in SCANNED_FILES if (REPO / name).is_file()]
    for folder in SCANNED_FOLDERS:
        files += [
            p
            for p in sorted((REPO / folder).rglob("*"))
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
        ]
    return files


def compose_variables() -> set[str]:
    """The variables ``docker-compose.yaml`` interpolates from ``.env`` (``${NAME:-...}``)."""
    return set(re.findall(r"\$\{(\w+)", (REPO / "docker-compose.yaml").read_text(encoding="utf-8")))


def paragraphs(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each blank-line separated block."""
    blocks, start, lines = [], 1, []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            if not lines:
                start = number
            lines.append(line)
        elif lines:
            blocks.append((start, "\n".join(lines)))
            lines = []
    if lines:
        blocks.append((start, "\n".join(lines)))
    return blocks


ABOUT_COMPOSE = re.compile(r"(?<![\w.])\.env\b|compose", re.IGNORECASE)  # `.env`, not os.environ


def misplaced_old_names(path: Path, compose: set[str]) -> list[str]:
    relative = path.relative_to(REPO).as_posix()
    if relative in DEPRECATION_TESTS:
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    found = []
    for start, block in paragraphs(text):
        if (relative, block[: len(DEPRECATION_PARAGRAPH[1])]) == DEPRECATION_PARAGRAPH:
            continue
        for offset, line in enumerate(block.splitlines()):
            for name in ANY_NAME.findall(line):
                if name not in LEGACY:
                    continue  # EVERY8D_PASSWORD, EVERY8D_TEST_POSTGRES, ...: not options
                if name in compose and (relative == "docker-compose.yaml" or ABOUT_COMPOSE.search(block)):
                    continue
                key = name.removeprefix(settings.LEGACY_PREFIX).lower()
                found.append(f"{relative}:{start + offset}: {name} (use {settings.env_name(key)})")
    return found


def test_the_deprecated_names_appear_only_where_the_deprecation_is_described():
    compose = compose_variables()
    assert "EVERY8D_PUSH_TOKEN" in compose  # the one compose variable spelled like an old option name
    found = [hit for path in scanned() for hit in misplaced_old_names(path, compose)]
    assert not found, "deprecated EVERY8D_<KEY> names:\n" + "\n".join(found)


def test_the_deprecation_paragraph_is_there_and_says_what_replaces_the_old_names():
    relative, opening = DEPRECATION_PARAGRAPH
    text = (REPO / relative).read_text(encoding="utf-8")
    blocks = [block for _, block in paragraphs(text) if block.startswith(opening)]
    assert len(blocks) == 1
    assert "DeprecationWarning" in blocks[0] and "next release" in blocks[0]
    assert all(path.is_file() for path in (REPO / p for p in DEPRECATION_TESTS))


def test_every_new_name_mentioned_is_an_option():
    """``AIRFLOW__EVERY8D__<KEY>`` (``_CMD`` / ``_SECRET`` too) and ``[every8d] <key>`` name real options."""
    unknown = set()
    for path in scanned():
        text = path.read_text(encoding="utf-8", errors="replace")
        relative = path.relative_to(REPO).as_posix()
        for name in NEW_NAME.findall(text):
            key = name.lower()
            if key.endswith("_"):
                continue  # a prefix (``AIRFLOW__EVERY8D__PUSH_*``), not a name
            for suffix in ("_cmd", "_secret"):
                if key.endswith(suffix) and key.removesuffix(suffix) in settings.OPTIONS:
                    key = key.removesuffix(suffix)
            if key not in settings.OPTIONS:
                unknown.add(f"{relative}: AIRFLOW__EVERY8D__{name}")
        keys = SECTION_KEY.findall(text)
        unknown |= {f"{relative}: [every8d] {key}" for key in keys if key not in settings.OPTIONS}
    assert not unknown, "not in settings.OPTIONS:\n" + "\n".join(sorted(unknown))
