"""The complaint classifier on any text: no crash, the contract's shape, deterministic.

The contract (DESIGN.md, ``pantau complaints classify``): one JSON object per text line,
``{"text", "complaint": bool, "topics": [...]}``, topics drawn from a fixed set.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prop_support import PAYLOADS, examples, hostile_text

from monitor.social.classify import TOPICS, Classification, classify, normalise

#: Words the rules react to, so that generated posts reach deep into them.
TRIGGERS = (
    "prakerja",
    "error",
    "gak bisa",
    "gabisa",
    "login",
    "daftar",
    "otp",
    "kode",
    "lemot",
    "down",
    "tapi",
    "udah",
    "normal",
    "kemarin",
    "masih",
    "nya",
    "ku",
    "ternyata",
    "sinyal",
    "semoga",
    "tutorial",
    "maintenance",
    "lolos",
    "@PrakerjaID",
    "https://t.co/x",
    "3rr0r",
    "ga-ga",
    "errrrrrrrrrrr",
    "!",
    "?",
    ",",
    "\n",
)
ZERO_WIDTH_AND_BIDI = (
    "\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
ARABIC_AND_HEBREW = "مرحبا بالعالم שלום"
EMOJI = "😀😭🔥👩‍👩‍👧🇮🇩"

pieces = st.one_of(
    st.sampled_from(TRIGGERS),
    st.sampled_from(PAYLOADS),
    st.text(max_size=10),  # any code point but surrogates: controls, combining marks ...
    st.text(alphabet=ZERO_WIDTH_AND_BIDI + ARABIC_AND_HEBREW + EMOJI, max_size=8),
    st.characters(codec="ascii").map(lambda c: c * 30),
)
posts = st.one_of(
    st.lists(pieces, max_size=30).map(" ".join),
    st.lists(pieces, max_size=30).map("".join),
    hostile_text,
    st.text(),
)
#: Very long posts: a piece repeated to thousands of characters (the cost is linear).
long_posts = st.tuples(st.lists(pieces, min_size=1, max_size=5), st.integers(1000, 10_000)).map(
    lambda pair: ("".join(pair[0]) * pair[1])[: pair[1]]
)


def assert_contract(text: str, verdict: Classification) -> None:
    assert isinstance(verdict, Classification)
    assert isinstance(verdict.complaint, bool)
    assert set(verdict.topics) <= set(TOPICS)
    assert list(verdict.topics) == [t for t in TOPICS if t in verdict.topics]
    assert verdict.complaint == bool(verdict.topics)
    shape = verdict.as_json(text)
    assert set(shape) == {"text", "complaint", "topics"} and shape["text"] == text
    assert json.loads(json.dumps(shape, ensure_ascii=False)) == shape


@examples(200)
@given(posts)
def test_any_post_gets_a_verdict_of_the_contract_shape(text: str) -> None:
    verdict = classify(text)
    assert_contract(text, verdict)
    assert classify(text) == verdict  # deterministic, the token cache notwithstanding


@examples(30)
@given(long_posts)
def test_long_posts_get_a_verdict(text: str) -> None:
    assert_contract(text, classify(text))


@examples(100)
@given(posts)
def test_normalised_text_is_lowercase_ascii_words(text: str) -> None:
    canon = normalise(text)
    assert canon == canon.strip() and "  " not in canon
    assert all(token.isascii() for token in canon.split())
    assert canon == canon.lower()


def test_a_token_of_thousands_of_suffixes_is_read() -> None:
    """Each "-nya" used to cost a recursive call: 400 of them crashed the classifier."""
    assert normalise("error" + "nya" * 5000) == "error" + " nya" * 5000
    assert classify("prakerja error" + "nya" * 5000 + " gak bisa login").complaint


def test_the_command_prints_one_object_per_line(tmp_path: Path) -> None:
    """Hostile lines through ``pantau complaints classify``: one JSON object per line,
    each echoing its text exactly."""
    lines = [
        *PAYLOADS,
        "prakerja error" + "nya" * 3000,
        "gak bisa login prakerja 😭 " * 300,
        "\u202eprakerja error\u202c",
        "\u200bprakerja\u200b down",
        "\x00\x01\x1b[31mmerah\x1b[0m prakerja error",
        "   ",  # blank: skipped
    ]
    texts = [line for line in "\n".join(lines).split("\n") if line.strip()]
    pantau = Path(sys.executable).with_name("pantau")
    proc = subprocess.run(
        [str(pantau), "-c", str(tmp_path / "none.toml"), "complaints", "classify"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [p["text"] for p in printed] == texts
    for shape in printed:
        assert shape == classify(shape["text"]).as_json(shape["text"])
