"""Statements posted to X as threads through tweepy, against X API v2 shapes (``responses``).

No request leaves the process: ``responses`` intercepts requests, which tweepy uses.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import requests
import responses
from engine_support import make_config

from monitor.clock import ManualClock
from monitor.config import Settings, parse_settings
from monitor.store import IncidentRow, IncidentUpdateRow, Store, XPostRow
from monitor.xpost import (
    MAX_CHARS,
    XPostError,
    XPostResult,
    incident_url,
    post_update,
    resume_post,
    thread_parts,
    weighted_length,
)

TWEETS = "https://api.twitter.com/2/tweets"
BASE = "https://status.prakerja.go.id"
LINK = f"{BASE}/incidents/1.html"
SECRETS = {
    "X_API_KEY": "ak-4f1c9e0d-SECRET-KEY",
    "X_API_SECRET": "as-77d0b2aa-SECRET-SECRET",
    "X_ACCESS_TOKEN": "1445-at-9c3e51-SECRET-TOKEN",
    "X_ACCESS_TOKEN_SECRET": "ats-31aa08f2-SECRET-TOKEN-SECRET",
}
# Only signatures made with these go over the wire; they appear nowhere, ever.
SIGNING_SECRETS = (SECRETS["X_API_SECRET"], SECRETS["X_ACCESS_TOKEN_SECRET"])
FIRST_ID, SECOND_ID, THIRD_ID = "1445880548472328192", "1445880548472328193", "1445880548472328194"

ID_LONG = (
    "Pendaftaran Kartu Prakerja Gelombang 70 sedang mengalami gangguan sejak pukul 14.05 WIB. "
    "Tim kami sedang menyelidiki penyebabnya bersama penyedia layanan OTP. Peserta yang sudah "
    "menerima kode OTP tidak perlu mendaftar ulang; data Anda aman. Kami akan memberi kabar "
    "terbaru paling lambat pukul 15.00 WIB. Mohon maaf atas ketidaknyamanan ini."
)
EN_LONG = (
    "Registration for Kartu Prakerja Wave 70 has been disrupted since 14:05 WIB. Our team is "
    "investigating the cause together with the OTP provider. Applicants who already received "
    "an OTP code do not need to register again; your data is safe. We will post an update by "
    "15:00 WIB at the latest. We apologise for the inconvenience."
)


def _x_settings(*, languages: tuple[str, ...] = ("id", "en"), base_url: str = BASE) -> Settings:
    x = {
        "api_key": "${X_API_KEY}",
        "api_secret": "${X_API_SECRET}",
        "access_token": "${X_ACCESS_TOKEN}",
        "access_token_secret": "${X_ACCESS_TOKEN_SECRET}",
        "languages": list(languages),
    }
    data = make_config(site={"base_url": base_url}, incidents={"x": x})
    return parse_settings(data, env=SECRETS)


@pytest.fixture
def x_settings() -> Settings:
    return _x_settings()


def _add_update(store: Store, clock: ManualClock, *, id_text: str, en_text: str) -> int:
    """A new incident with one statement; the statement's (timeline entry's) id."""
    with store.tx() as tx:
        incident = tx.add_incident(
            IncidentRow(
                title_id="Gangguan pendaftaran",
                title_en="Registration disrupted",
                status="investigating",
                started_at=clock.now(),
                updated_at=clock.now(),
            ),
            {"signup": "major_outage"},
        )
        assert incident.id is not None
        entry = tx.add_update(
            IncidentUpdateRow(
                incident_id=incident.id,
                at=clock.now(),
                status="investigating",
                author="comms",
                message_id=id_text,
                message_en=en_text,
            )
        )
        assert entry.id is not None
        return entry.id


def _created(post_id: str) -> dict[str, Any]:
    return {"json": {"data": {"id": post_id, "text": "..."}}, "status": 201}


UNAUTHORIZED = {
    "json": {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    },
    "status": 401,
}
DUPLICATE = {
    "json": {
        "detail": "You are not allowed to create a Tweet with duplicate content.",
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
    },
    "status": 403,
}
UNAVAILABLE = {
    "json": {"title": "Service Unavailable", "detail": "Service Unavailable", "status": 503},
    "status": 503,
}


def _rate_limited(reset: int) -> dict[str, Any]:
    return {
        "json": {
            "title": "Too Many Requests",
            "detail": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
        },
        "status": 429,
        "headers": {
            "x-rate-limit-limit": "200",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(reset),
        },
    }


@contextmanager
def x_api(*answers: dict[str, Any]) -> Iterator[list[requests.PreparedRequest]]:
    """X answering POST /2/tweets with ``answers`` in order (every one must be used);
    yields the requests made, filled in when the block ends."""
    made: list[requests.PreparedRequest] = []
    with responses.RequestsMock(assert_all_requests_are_fired=True) as api:
        for answer in answers:
            api.post(TWEETS, **answer)
        try:
            yield made
        finally:
            made.extend(call.request for call in api.calls)


def _bodies(made: list[requests.PreparedRequest]) -> list[dict[str, Any]]:
    return [json.loads(request.body) for request in made]


def _row(store: Store, post_id: int) -> XPostRow:
    with store.read() as tx:
        row = tx.x_post(post_id)
    assert row is not None
    return row


# -- posting -----------------------------------------------------------------------


def test_a_short_statement_is_one_post_with_the_link(
    store: Store, clock: ManualClock, x_settings: Settings
) -> None:
    update_id = _add_update(
        store,
        clock,
        id_text="Pendaftaran sedang terganggu. Kami sedang menyelidiki.",
        en_text="Registration is disrupted. We are investigating.",
    )
    with x_api(_created(FIRST_ID)) as api:
        result = post_update(store, x_settings, update_id, now=clock.now())
    (body,) = _bodies(api)
    assert body == {
        "text": "Pendaftaran sedang terganggu. Kami sedang menyelidiki.\n\n"
        "Registration is disrupted. We are investigating.\n\n" + LINK
    }
    assert api[0].headers["Authorization"].startswith("OAuth ")
    assert api[0].req_kwargs["timeout"] == 20  # tweepy itself would wait forever
    assert result == XPostResult(
        post_id=result.post_id,
        status="posted",
        post_ids=(FIRST_ID,),
        error=None,
        parts=(body["text"],),
    )
    assert result.url == f"https://x.com/i/web/status/{FIRST_ID}"
    row = _row(store, result.post_id)
    assert (row.status, json.loads(row.post_ids), row.attempts) == ("posted", [FIRST_ID], 1)
    assert row.posted_at == clock.now() and row.error is None


def test_a_long_bilingual_statement_is_a_thread_each_part_replying_to_the_one_before(
    store: Store, clock: ManualClock, x_settings: Settings
) -> None:
    update_id = _add_update(store, clock, id_text=ID_LONG, en_text=EN_LONG)
    ids = [str(1445880548472328192 + n) for n in range(4)]
    with x_api(*(_created(post_id) for post_id in ids)) as api:
        result = post_update(store, x_settings, update_id, now=clock.now())
    bodies = _bodies(api)
    assert result.status == "posted" and result.post_ids == tuple(ids)
    assert [body["text"] for body in bodies] == list(result.parts)
    assert "reply" not in bodies[0]
    assert [body["reply"]["in_reply_to_tweet_id"] for body in bodies[1:]] == ids[:-1]
    assert bodies[0]["text"].endswith(f"(1/4)\n\n{LINK}")
    assert all(LINK not in body["text"] for body in bodies[1:])
    assert [body["text"][-5:] for body in bodies[1:]] == ["(2/4)", "(3/4)", "(4/4)"]
    assert all(weighted_length(body["text"]) <= MAX_CHARS for body in bodies)
    # Each language starts its own post, and posts end at the end of a sentence.
    assert bodies[2]["text"].startswith("Registration for Kartu Prakerja Wave 70")
    assert all(body["text"].split(" (")[0].endswith(".") for body in bodies)


def test_a_failure_on_the_second_part_keeps_the_first_and_resume_finishes_the_thread(
    store: Store, clock: ManualClock, x_settings: Settings
) -> None:
    update_id = _add_update(store, clock, id_text=ID_LONG, en_text="")
    with x_api(_created(FIRST_ID), UNAVAILABLE):
        failed = post_update(store, x_settings, update_id, now=clock.now())
    assert failed.status == "failed" and failed.post_ids == (FIRST_ID,)
    assert failed.error == "X had a server error (503); try again later"
    assert len(failed.parts) == 2
    row = _row(store, failed.post_id)
    assert (row.status, json.loads(row.post_ids), row.error) == ("failed", [FIRST_ID], failed.error)

    with x_api(_created(SECOND_ID)) as api:
        done = resume_post(store, x_settings, failed.post_id, now=clock.advance(600))
    (body,) = _bodies(api)
    assert body == {"text": failed.parts[1], "reply": {"in_reply_to_tweet_id": FIRST_ID}}
    assert done.status == "posted" and done.post_ids == (FIRST_ID, SECOND_ID)
    assert done.error is None and done.url == f"https://x.com/i/web/status/{FIRST_ID}"
    row = _row(store, failed.post_id)
    assert (row.status, row.attempts, row.posted_at) == ("posted", 2, clock.now())


def test_a_posted_thread_is_not_posted_again_by_resume(
    store: Store, clock: ManualClock, x_settings: Settings
) -> None:
    update_id = _add_update(store, clock, id_text="Pendaftaran normal kembali.", en_text="")
    with x_api(_created(FIRST_ID)):
        posted = post_update(store, x_settings, update_id, now=clock.now())
    with x_api() as api:
        again = resume_post(store, x_settings, posted.post_id, now=clock.advance(60))
        with pytest.raises(XPostError, match="already has X post"):
            post_update(store, x_settings, update_id, now=clock.now())
    assert api == []
    assert again == posted


class RecordingPoster:
    """An XPoster that records its posts; its process 'dies' (KeyboardInterrupt) after
    ``posts`` of them. Post ids are ``prefix`` and a number."""

    def __init__(self, *, posts: int = 1_000, prefix: str = "x") -> None:
        self.posts = posts
        self.prefix = prefix
        self.made: list[tuple[str, str | None]] = []

    def create(self, text: str, reply_to: str | None) -> str:
        if len(self.made) == self.posts:
            raise KeyboardInterrupt
        self.made.append((text, reply_to))
        return f"{self.prefix}{len(self.made)}"


def test_an_interrupted_thread_is_failed_and_a_pending_one_resumed_only_with_force(
    store: Store, clock: ManualClock, x_settings: Settings
) -> None:
    update_id = _add_update(store, clock, id_text=ID_LONG, en_text=EN_LONG)
    crashing = RecordingPoster(posts=2, prefix="a")
    with pytest.raises(KeyboardInterrupt):
        post_update(store, x_settings, update_id, now=clock.now(), poster=crashing)
    with store.read() as tx:
        (row,) = tx.x_posts()
    assert row.id is not None
    assert (row.status, json.loads(row.post_ids)) == ("failed", ["a1", "a2"])
    assert row.error == "interrupted (KeyboardInterrupt)"
    # A row left pending (its process killed outright) waits for a human's `force`.
    with store.tx() as tx:
        pending = tx.x_post(row.id)
        assert pending is not None
        pending.status = "pending"
    poster = RecordingPoster(prefix="b")
    with pytest.raises(XPostError, match="still pending"):
        resume_post(store, x_settings, row.id, now=clock.now(), poster=poster)
    done = resume_post(store, x_settings, row.id, now=clock.now(), poster=poster, force=True)
    assert done.status == "posted" and done.post_ids == ("a1", "a2", "b1", "b2")
    assert poster.made == [(done.parts[2], "a2"), (done.parts[3], "b1")]


# -- failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(UNAUTHORIZED, "X refused the credentials (401)", id="401"),
        pytest.param(DUPLICATE, "X rejected the post as duplicate content (403)", id="403-dup"),
        pytest.param(
            {
                "json": {"detail": "You are not permitted to perform this action.", "status": 403},
                "status": 403,
            },
            "X refused the post (403): You are not permitted to perform this action.",
            id="403-read-only-app",
        ),
        pytest.param(
            _rate_limited(reset=1789628700),  # 2026-09-17 07:05 UTC
            "rate limited by X (429); try again after 14:05 WIB",
            id="429",
        ),
        pytest.param(UNAVAILABLE, "X had a server error (503); try again later", id="503"),
        pytest.param(
            {"body": requests.ConnectionError("connection refused")},
            "could not reach X (ConnectionError)",
            id="network",
        ),
        pytest.param(
            {"body": requests.ReadTimeout("read timed out")},
            "X did not answer within 20s",
            id="timeout",
        ),
    ],
)
def test_a_refusal_of_x_is_reported_in_plain_words_without_retrying(
    store: Store,
    clock: ManualClock,
    x_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    answer: dict[str, Any],
    error: str,
) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds}s")

    monkeypatch.setattr(time, "sleep", no_sleep)
    update_id = _add_update(store, clock, id_text="Pendaftaran terganggu.", en_text="")
    with x_api(answer) as api:
        result = post_update(store, x_settings, update_id, now=clock.now())
    assert len(api) == 1
    assert (result.status, result.post_ids, result.error, result.url) == ("failed", (), error, None)
    row = _row(store, result.post_id)
    assert (row.status, row.error, json.loads(row.post_ids)) == ("failed", error, [])


def test_a_rate_limit_ending_tomorrow_names_the_day(
    store: Store, clock: ManualClock, x_settings: Settings
) -> None:
    reset = int((clock.now() + timedelta(hours=20)).timestamp())  # 10:00 WIB the next day
    update_id = _add_update(store, clock, id_text="Pendaftaran terganggu.", en_text="")
    with x_api(_rate_limited(reset)):
        result = post_update(store, x_settings, update_id, now=clock.now())
    assert result.error == "rate limited by X (429); try again after 18 Sep 2026, 10:00 WIB"


def test_no_secret_reaches_errors_rows_or_our_logs(
    store: Store, clock: ManualClock, x_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = _add_update(store, clock, id_text=ID_LONG, en_text="")
    second = _add_update(store, clock, id_text="Pendaftaran normal.", en_text="Registration is up.")
    with x_api(_created(FIRST_ID), UNAUTHORIZED, _created(SECOND_ID)):
        failed = post_update(store, x_settings, first, now=clock.now())
        posted = post_update(store, x_settings, second, now=clock.now())
    with store.read() as tx:
        rows = tx.x_posts()
    shown = [str(failed.error), repr(failed), repr(posted), repr(x_settings)]
    shown += [str(value) for row in rows for value in row.model_dump().values()]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("monitor")]
    assert any("x post failed" in message for message in ours)
    everything = [r.getMessage() for r in caplog.records]
    for secret in SECRETS.values():
        assert not any(secret in text for text in shown + ours)
    # oauthlib and requests_oauthlib log the key and token (not the secrets) at debug
    # level: the CLI keeps those two loggers at WARNING.
    signers = ("oauthlib", "requests_oauthlib")
    others = [r.getMessage() for r in caplog.records if not r.name.startswith(signers)]
    for secret in SECRETS.values():
        assert not any(secret in text for text in others)
    for secret in SIGNING_SECRETS:
        assert not any(secret in text for text in everything)


def test_a_failure_leaves_the_incident_and_its_statement_untouched(
    store: Store, clock: ManualClock, x_settings: Settings
) -> None:
    update_id = _add_update(store, clock, id_text=ID_LONG, en_text=EN_LONG)

    def snapshot() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with store.read() as tx:
            incidents = [row.model_dump() for row in tx.incidents()]
            return incidents, [row.model_dump() for row in tx.updates(1)]

    before = snapshot()
    with x_api(_created(FIRST_ID), UNAUTHORIZED):
        result = post_update(store, x_settings, update_id, now=clock.advance(30))
    assert result.status == "failed"
    assert snapshot() == before


def test_a_statement_with_indonesian_text_links_and_emoji_fits_every_post(
    store: Store, clock: ManualClock, x_settings: Settings
) -> None:
    long_link = (
        "https://www.prakerja.go.id/faq/pendaftaran?gelombang=70&langkah=verifikasi-otp-ulang"
    )
    id_text = (
        "⚠️ Gangguan verifikasi OTP sejak 14.05 WIB 🙏 Kode OTP terlambat masuk untuk sebagian "
        f"peserta. Panduan lengkap: {long_link} — jangan bagikan kode OTP kepada siapa pun, "
        "termasuk yang mengaku petugas Prakerja. Informasi resmi hanya di prakerja.go.id dan "
        "akun ini. Terima kasih atas kesabaran Anda 🙏🙏 #Prakerja #Gelombang70 s.d. pukul 16.00."
    )
    update_id = _add_update(store, clock, id_text=id_text, en_text="")
    with x_api(_created(FIRST_ID), _created(SECOND_ID)) as api:
        result = post_update(store, x_settings, update_id, now=clock.now())
    bodies = _bodies(api)
    assert result.status == "posted" and len(bodies) == 2
    assert bodies[0]["text"].startswith("⚠️ Gangguan verifikasi OTP")
    # Raw, the first post is longer than 280; its links count 23 each.
    assert LINK in bodies[0]["text"] and long_link in bodies[0]["text"]
    assert len(bodies[0]["text"]) > MAX_CHARS
    assert bodies[1]["text"].endswith("🙏🙏 #Prakerja #Gelombang70 s.d. pukul 16.00. (2/2)")
    assert all(weighted_length(body["text"]) <= MAX_CHARS for body in bodies)
    assert bodies[1]["reply"] == {"in_reply_to_tweet_id": FIRST_ID}


def test_a_language_equal_to_another_or_empty_is_posted_once(
    store: Store, clock: ManualClock
) -> None:
    settings = _x_settings(languages=("en", "id"))
    update_id = _add_update(store, clock, id_text="Prakerja OK.", en_text=" Prakerja OK. ")
    poster = RecordingPoster()
    result = post_update(store, settings, update_id, now=clock.now(), poster=poster)
    assert result.parts == (f"Prakerja OK.\n\n{LINK}",)


def test_posting_needs_the_x_settings_and_an_existing_update(
    store: Store, clock: ManualClock, settings: Settings, x_settings: Settings
) -> None:
    update_id = _add_update(store, clock, id_text="Pendaftaran terganggu.", en_text="")
    with pytest.raises(XPostError, match=r"add \[incidents.x\]"):
        post_update(store, settings, update_id, now=clock.now(), poster=RecordingPoster())
    no_site = _x_settings(base_url="")
    with pytest.raises(XPostError, match=r"\[site\] base_url is not set"):
        post_update(store, no_site, update_id, now=clock.now(), poster=RecordingPoster())
    with pytest.raises(XPostError, match="no incident update #99"):
        post_update(store, x_settings, 99, now=clock.now(), poster=RecordingPoster())
    with pytest.raises(XPostError, match="no X post #7"):
        resume_post(store, x_settings, 7, now=clock.now(), poster=RecordingPoster())
    with store.read() as tx:
        assert tx.x_posts() == []


# -- counting and splitting --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("Pendaftaran dibuka", 18),
        ("https://status.prakerja.go.id/incidents/" + "1" * 200 + ".html", 23),
        ("Lihat https://x.com/a.", 6 + 23 + 1),
        ("prakerja.go.id", 23),  # bare: 23 or its length, whichever is more
        ("s.d. pukul 16.00", 16),
        ("中文", 4),
        ("🙏", 2),
        ("👍🏽", 4),  # X counts 2: the documented upper bound
        ("e\u0301", 1),  # NFC: é
        ("©", 2),
    ],
)
def test_weighted_length_counts_as_x_does_or_a_little_more(text: str, weight: int) -> None:
    assert weighted_length(text) == weight


def test_a_post_of_exactly_280_weighted_characters_is_not_split() -> None:
    text = "a" * (MAX_CHARS - 2 - 23)
    assert thread_parts([text], LINK) == [f"{text}\n\n{LINK}"]
    assert weighted_length(thread_parts([text], LINK)[0]) == MAX_CHARS
    assert len(thread_parts([text + "a"], LINK)) == 2


def test_links_count_23_so_a_long_link_still_fits_one_post() -> None:
    text = "Panduan: https://www.prakerja.go.id/" + "panduan-" * 40
    assert len(text) > MAX_CHARS
    assert thread_parts([text], LINK) == [f"{text}\n\n{LINK}"]


def test_a_word_longer_than_a_post_is_cut_into_posts_that_fit() -> None:
    word = "x" * 600
    parts = thread_parts([word], LINK)
    assert len(parts) == 3
    assert all(weighted_length(part) <= MAX_CHARS for part in parts)
    assert parts[0].endswith(f" (1/3)\n\n{LINK}")
    assert "".join(part.split(" (")[0] for part in parts) == word


def test_a_thread_of_ten_or_more_posts_numbers_them_all_within_the_limit() -> None:
    sentences = " ".join(f"Kalimat nomor {n} tentang gangguan pendaftaran." for n in range(80))
    parts = thread_parts([sentences], LINK)
    assert len(parts) >= 10
    total = len(parts)
    assert [part.split("\n\n")[0].rsplit(" ", 1)[1] for part in parts] == [
        f"({n}/{total})" for n in range(1, total + 1)
    ]
    assert all(weighted_length(part) <= MAX_CHARS for part in parts)
    assert all(part.split(" (")[0].endswith(".") for part in parts)


def test_there_must_be_something_to_post() -> None:
    with pytest.raises(ValueError, match="no text"):
        thread_parts(["", "  "], LINK)


def test_the_incident_url_is_on_the_public_site(x_settings: Settings) -> None:
    assert incident_url(x_settings, 12) == f"{BASE}/incidents/12.html"
