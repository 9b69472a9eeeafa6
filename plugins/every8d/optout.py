"""Is a reply an opt-out?  Whole message or first word equal to a keyword.

One matcher for both paths a reply can take — the push endpoint's journal
flush and the status sync's polled replies — so a number opts out the same
way whichever path its reply came by.

Matching is deliberately narrow: a reply opts out when, after Unicode NFKC
(full-width ``ＳＴＯＰ`` becomes ``STOP``) and case folding, the whole message
or its first word is a keyword.  Words end at whitespace or punctuation, so
"STOP!", "取消。" and "退訂 謝謝" match; "不要緊" (never mind) and "please stop"
do not.  A keyword of CJK text that should also match as a prefix has to be
configured as its own keyword (e.g. ``取消訂閱``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from every8d import settings

ENV_OPT_OUT_KEYWORDS = settings.env_name("opt_out_keywords")
DEFAULT_OPT_OUT_KEYWORDS = (
    "取消",
    "取消訂閱",
    "退訂",
    "拒收",
    "不要",
    "STOP",
    "UNSUBSCRIBE",
    "QUIT",
    "TD",
)


def parse_keywords(text: str | None) -> tuple[str, ...]:
    """Comma-separated opt-out keywords; unset or blank means the defaults."""
    if text is None or not text.strip():
        return DEFAULT_OPT_OUT_KEYWORDS
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _is_break(char: str) -> bool:
    return char.isspace() or unicodedata.category(char)[0] in "PZ"


def _strip_breaks(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_break(text[start]):
        start += 1
    while end > start and _is_break(text[end - 1]):
        end -= 1
    return text[start:end]


def first_word(text: str) -> str:
    """The first run of characters up to whitespace or punctuation, after leading breaks."""
    text = _strip_breaks(text)
    for index, char in enumerate(text):
        if _is_break(char):
            return text[:index]
    return text


class OptOutMatcher:
    """Matches replies against opt-out keywords (case-insensitive, NFKC).

    :param keywords: the keywords; blank ones are ignored.
    """

    def __init__(self, keywords: Iterable[str]) -> None:
        self.keywords = frozenset(_fold(k).strip() for k in keywords if k and k.strip())

    @classmethod
    def from_env(cls) -> OptOutMatcher:
        """The keywords of ``[every8d] opt_out_keywords`` (comma-separated), else the defaults."""
        return cls(parse_keywords(settings.get("opt_out_keywords") or None))

    def __call__(self, text: str | None) -> bool:
        if not text or not self.keywords:
            return False
        folded = _fold(text)
        return _strip_breaks(folded) in self.keywords or first_word(folded) in self.keywords
