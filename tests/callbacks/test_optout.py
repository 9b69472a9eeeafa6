"""Opt-out replies: whole message or first word, case- and width-insensitive."""

from __future__ import annotations

import pytest

from every8d.optout import DEFAULT_OPT_OUT_KEYWORDS, OptOutMatcher, first_word

default = OptOutMatcher(DEFAULT_OPT_OUT_KEYWORDS)


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop ",
        "STOP!",
        "stop please",
        "STOP. thanks",
        "ＳＴＯＰ",
        "unsubscribe",
        "Quit",
        "td",
        "TD。",
        "取消",
        "取消。",
        "取消 謝謝",
        "退訂",
        "「退訂」",
        "不要",
        "不要!",
        "\n取消\n",
    ],
)
def test_opt_outs(text):
    assert default(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "好的 收到",
        "please stop",
        "不要緊",
        "取消訂閱了嗎",
        "stopwatch",
        "TDK",
        "我不要了",
        "謝謝 STOP",
    ],
)
def test_not_opt_outs(text):
    assert not default(text)


def test_configured_keywords_replace_the_defaults():
    custom = OptOutMatcher(["取消訂閱", "Stop All"])
    assert custom("取消訂閱") and custom("stop all") and custom("ＳＴＯＰ　ＡＬＬ")
    assert not custom("STOP") and not custom("取消")


def test_first_word():
    assert first_word("  ¿Stop? now") == "Stop"
    assert first_word("退訂，謝謝") == "退訂"
