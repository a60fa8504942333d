"""The outage-complaint classifier: label rules, slang, hard negatives, topic conventions.

Most cases below are held-out posts written for these tests from the label rules in
``shared/data/complaints-id/README.md``; none is copied from the development set except
the README's own examples. The last test keeps the development-set F1 above a floor.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.social.classify import TOPICS, Classification, classify, normalise

DEV_SET = Path(__file__).resolve().parents[3] / "shared/data/complaints-id/dev.jsonl"
DEV_F1_FLOOR = 0.95


def topics_of(text: str) -> tuple[str, ...] | None:
    """The topics when ``text`` is a complaint, else ``None``."""
    verdict = classify(text)
    return verdict.topics if verdict.complaint else None


# --- the README's examples ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "topics"),
    [
        ("Mau daftar kartu Prakerja gelombang 9 tapi error dong", ("signup", "down")),
        ("Susah amat daftar prakerja webnya error gini", ("signup", "down")),
        ("nungguin kode sms dr prakerja kek nungguin kepastian dari doi", ("otp",)),
    ],
)
def test_readme_complaints_get_their_topics(text: str, topics: tuple[str, ...]) -> None:
    assert topics_of(text) == topics


@pytest.mark.parametrize(
    "text",
    [
        "insentif belum cair",
        "mood lagi down",
        "otak aku error",
        "gagal fokus",
        "tutorial login prakerja biar ga error",
        "akhirnya bisa login, lancar jaya",
        "kemarin error, sekarang udah normal",
        "semoga servernya kuat",
        "gagal lolos",
        "ga lolos",
    ],
)
def test_readme_hard_negatives_are_not_complaints(text: str) -> None:
    assert classify(text) == Classification(complaint=False, topics=())


# --- held-out complaints -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "topics"),
    [
        # Indonesian slang, abbreviations and elongations
        ("gak bisa login prakerja dari pagiii", ("login",)),
        ("loginnya gagal mulu, katanya password salah padahal baru reset", ("login",)),
        ("prakerja errorrr pas mau daftarrr", ("signup", "down")),
        ("web prakerja lemooot bgttt", ("slow",)),
        ("situs prakerja ga bisa diakses dari tadi", ("down",)),
        ("kode otp nggak dateng-dateng", ("otp",)),
        ("OTP gk msk2 udh 1 jam", ("otp",)),
        ("udah 2 jam stuck di loading, prakerja kenapa siii", ("slow",)),
        ("email verifikasi prakerja ga nyampe2, udah cek folder spam", ("otp",)),
        ("link aktivasi akun prakerja expired terus", ("otp",)),
        ("upload selfie gagal mulu, katanya wajah tidak terdeteksi", ("other",)),
        ("captcha nya ga mau muncul jir", ("other",)),
        ("tombol lanjut ga bisa diklik pas isi form pendaftaran", ("signup", "other")),
        ("halaman prakerja blank putih doang", ("down",)),
        ("aplikasi prakerja crash terus tiap dibuka", ("down",)),
        ("ke-logout terus tiap mau isi tes motivasi prakerja", ("login", "signup")),
        ("gabisa gabung gelombang, muncul pesan 'terjadi kesalahan'", ("signup", "down")),
        ("nungguin OTP prakerja kayak nungguin dia bales chat, ga dateng dateng", ("otp",)),
        ("prakerja 502 lagi 502 lagi", ("down",)),
        ("web prakerja ngelagnya parah bgt", ("slow",)),
        ("kenapa verifikasi wajah prakerja gagal terus ya", ("other",)),
        ("pas submit tes motivasi malah error 500", ("signup", "down")),
        ("otp masuk tp pas diinput 'kode salah' mulu", ("otp",)),
        ("lupa password, link reset password ga pernah dikirim ke email", ("login", "otp")),
        ("web prakerja muter2 mulu dari jam 12 siang", ("slow",)),
        ("foto ktp udah jelas tapi ditolak terus sama sistem prakerja", ("other",)),
        ("masa daftar prakerja aja butuh 3 jam, webnya lelet parah", ("signup", "slow")),
        ("udah coba pake wifi, pake data, tetep ga bisa buka prakerja", ("down",)),
        ("SMS OTP prakerja baru masuk setelah 30 menit, keburu expired", ("otp",)),
        ("prakerja kok tiba2 minta login ulang terus sih", ("login",)),
        ("captcha prakerja ngeselin, salah terus padahal udah bener", ("other",)),
        ("nyoba daftar prakerja di 3 hp, semuanya 'server sedang sibuk'", ("signup", "down")),
        ("web prakerja kena DDoS kah? lemot parah dari pagi", ("slow",)),
        ("Sudah 5 kali coba registrasi, selalu gagal di tahap verifikasi email", ("signup", "otp")),
        ("ga bisa upload foto KTP, muter2 terus", ("slow", "other")),
        ("gimana mau daftar kalau webnya aja down terus", ("signup", "down")),
        ("Server prakerja tumbang lagi 🙃", ("down",)),
        ("l0gin prakerja 3rr0r terus", ("login", "down")),
        ("𝗽𝗿𝗮𝗸𝗲𝗿𝗷𝗮 𝗹𝗲𝗺𝗼𝘁", ("slow",)),
        # news-style reports
        (
            "Ribuan pendaftar kesulitan mengakses situs Kartu Prakerja pada hari pertama "
            "pembukaan gelombang 20",
            ("down",),
        ),
        ("Pendaftaran prakerja gelombang baru eror, warganet ramai mengeluh", ("signup", "down")),
        (
            "Dashboard Prakerja tidak bisa dibuka sejak pagi, pengguna melaporkan muncul pesan 503",
            ("down",),
        ),
        # English and code-mixing
        ("503 Service Unavailable pas buka prakerja.go.id https://t.co/xYz", ("down",)),
        ("why is the prakerja site so slow today", ("slow",)),
        ("prakerja down? can't log in since morning", ("login", "down")),
        ("Registration page keeps timing out #prakerja", ("signup", "slow")),
        ("ERR_CONNECTION_TIMED_OUT tiap buka prakerja", ("slow", "down")),
        ("Prakerja is down again lol, 504 gateway timeout", ("slow", "down")),
        ("OTP never arrived, tried like 10 times #prakerja", ("otp",)),
        ("prakerja website error 500 pas login, wtf", ("login", "down")),
        ("Can't register for prakerja, the page just keeps loading", ("signup", "slow")),
        ("prakerja app keeps crashing on my phone", ("down",)),
        ("Verification code for Prakerja not received, anyone else?", ("otp",)),
        ("the prakerja app won't even open, just a white screen", ("down",)),
        ("@PrakerjaID min tolong, akun saya logout sendiri terus", ("login",)),
        # the site said in other words, a step named in the clause before
        ("halaman prakerja kosong melompong, ga ada isinya", ("down",)),
        ("website prakerja kok ngeblank ya", ("down",)),
        ("prakerja aplikasinya suka nutup sendiri, kenapa ya", ("down",)),
        ("otw gila nungguin web prakerja kebuka", ("down",)),
        ("halaman pendaftaran prakerja 404", ("signup", "down")),
        ("502 502 502 prakerja kenapa kamu", ("down",)),
        ("loading prakerja lama bgt, udah 10 menit belum kebuka", ("slow", "down")),
        ("dari subuh nyoba daftar prakerja, tiap klik lanjut balik lagi ke awal", ("signup",)),
        ("nomor hp ga bisa diverifikasi di prakerja, kodenya ga pernah sampe", ("otp",)),
        ("udah daftar prakerja tapi email konfirmasinya ga masuk2", ("otp",)),
        ("OTP masuk, tapi pas dimasukin katanya kadaluarsa", ("otp",)),
        (
            "pendaftaran prakerja kok ga bisa dilanjutin ya, tombol lanjutnya mati",
            ("signup", "other"),
        ),
        ("the prakerja signup form doesn't submit, button does nothing", ("signup", "other")),
        ("gimana mau lolos prakerja kalo daftarnya aja error terus", ("signup", "down")),
        ("jaringan aman, web lain lancar, cuma prakerja yang ga bisa dibuka", ("down",)),
        ("otp ga masuk2, padahal login lancar", ("otp",)),
        ("gua pikir hp gua yang rusak, ternyata emang prakerja nya yang down", ("down",)),
        ("ternyata bukan cuma aku yang error, prakerja emang lagi down", ("down",)),
        ("kemarin prakerja error terus, hari ini masih aja error", ("down",)),
    ],
)
def test_held_out_complaints_get_their_topics(text: str, topics: tuple[str, ...]) -> None:
    assert topics_of(text) == topics


# --- held-out hard negatives, one group per rule ----------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        # selection results
        "alhamdulillah lolos gelombang 20, makasih prakerja",
        "ga lolos lagi, udah 4x gagal seleksi",
        "status di dashboard 'gagal', sedih banget",
        "Gagal lagi, gelombang 19 ga lolos. Semangat buat yang lain",
        "deg2an nunggu hasil seleksi, semoga lolos",
        # incentives and payments
        "insentif ke-2 belum masuk nih padahal udah sebulan",
        "pencairan insentif gagal terus, rekening udah bener",
        "M-banking BCA error terus, mau bayar pelatihan prakerja jadi ga bisa",
        # tutorials and tips
        "tips biar OTP prakerja cepet masuk: pakai nomor yang aktif",
        "cara mengatasi error saat daftar prakerja, simak di sini",
        "tutorial upload ktp prakerja biar ga error",
        "Kata temen, kalau OTP ga masuk coba pakai nomor lain",
        "Jangan panik kalau web prakerja lemot, tunggu aja beberapa menit",
        # resolved, past, success
        "kemarin sempet down, tapi sekarang udah lancar jaya",
        "tadi pagi error, barusan coba lagi udah bisa daftar",
        "dulu gelombang awal servernya sering down, sekarang mah aman",
        "tahun lalu web prakerja sering down pas pembukaan, tahun ini gimana ya",
        "Prakerja lancar jaya kok, ga ada error sama sekali",
        "daftar prakerja cuma 5 menit, ga pake lemot",
        "Webinar prakerja tadi seru, ga ada gangguan sama sekali",
        "Alhamdulillah OTP langsung masuk, daftar prakerja lancar",
        # hopes and predictions
        "semoga besok pas pembukaan gelombang baru webnya ga down",
        "prediksi: jam 12 nanti web prakerja bakal tumbang 😂",
        "semoga OTP nya lancar ya besok",
        # maintenance announcements
        "Pemberitahuan: layanan Prakerja akan mengalami pemeliharaan sistem pada Sabtu "
        "pukul 01.00-04.00 WIB",
        "Maintenance terjadwal situs Prakerja malam ini, harap maklum",
        # other services
        "web BPJS Ketenagakerjaan error terus dari tadi",
        "shopee lemot banget hari ini",
        "zoom error pas webinar prakerja",
        "web sekolah anakku down, untung daftar prakerja udah dari kemarin",
        # own connection, device or mistake
        "sinyal indihome lagi jelek, mau buka apa2 lemot",
        "hp aku yang lemot kayaknya, bukan prakerja",
        "OTP ga masuk2 ternyata nomor yang aku masukin salah wkwk",
        "sempet error pas daftar, eh ternyata salah masukin NIK",
        "Prakerja ga down kok, kamu aja yang sinyalnya jelek",
        # figurative uses
        "otakku langsung error liat soal tes motivasi",
        "lagi down banget abis ditolak kerja, mau coba prakerja aja",
        "gagal fokus sama thumbnail video pelatihan prakerja",
        "prakerja tuh bikin aku down to earth",
        "lemot banget otak gue hari ini, padahal cuma ngerjain soal tes motivasi prakerja",
        "error 404: semangat not found",
        # questions, news and chatter without an access problem
        "umur 30 masih bisa daftar prakerja ga?",
        "Berita: Pemerintah tambah kuota Prakerja jadi 1 juta peserta",
        "kapan pengumuman gelombang 20? udah ga sabar",
        "Thread pengalaman ikut pelatihan prakerja dari awal sampai dapet sertifikat 🧵",
        "jangan kasih kode OTP prakerja ke siapa pun ya",
        "berapa lama sih biasanya verifikasi data prakerja?",
        "mau cek status pendaftaran prakerja, udah lolos belum ya",
        # found while checking generalisation
        "web prakerja sepi, ga ada yang error",
        "bukan prakerjanya yang lemot, aku yang lemot baca syaratnya",
        "perasaanku lagi down, tapi tetap semangat ikut pelatihan prakerja",
        "saldo pelatihan prakerja ga bisa dipake di platform ini, aneh",
        "gojek error, telat ke tempat pelatihan offline prakerja",
        "waktu gelombang 3 dulu servernya down seharian",
        "jaringan telkomsel lagi down ya? prakerja ga kebuka2",
        "oalah ternyata gara2 vpn, makanya prakerja ga bisa dibuka",
        "ternyata otp ga masuk karena nomor aku udah ga aktif, maaf min",
        "ini nih solusi kalau OTP prakerja ga masuk: ganti ke verifikasi via email",
        "sabar ya yang belum dapet OTP, emang lagi rame, ditunggu aja",
        "akhirnya berhasil daftar prakerja setelah 3 jam error terus",
        "error 404 semangatku hilang liat pengumuman prakerja",
        "Kuota gelombang ini 500 ribu peserta, kena 500 ribu pendaftar di hari pertama",
    ],
)
def test_held_out_hard_negatives_are_not_complaints(text: str) -> None:
    assert classify(text) == Classification(complaint=False, topics=())


# --- slang and elongation variants -------------------------------------------------------
@pytest.mark.parametrize(
    "negation", ["ga", "gak", "gk", "nggak", "ngga", "enggak", "tdk", "tidak", "g", "kagak"]
)
def test_every_negation_spelling_reports_a_failed_login(negation: str) -> None:
    assert topics_of(f"{negation} bisa login prakerja") == ("login",)


@pytest.mark.parametrize("glued", ["gabisa", "gbs", "gakbisa", "gbisa", "tdkbisa", "gabisaa"])
def test_glued_negations_are_split(glued: str) -> None:
    assert topics_of(f"{glued} daftar prakerja dari tadi") == ("signup",)


@pytest.mark.parametrize(
    "error", ["error", "eror", "errorrr", "ERRORRRR", "erorr", "err", "3rr0r", "ngeror"]
)
def test_error_spellings_report_the_site_down(error: str) -> None:
    assert topics_of(f"web prakerja {error} lagi") == ("down",)


@pytest.mark.parametrize(
    "slow", ["lemot", "lemotttt", "lemod", "lelet", "lambat", "ngelag", "nge-lag", "lola"]
)
def test_slow_spellings_report_slow(slow: str) -> None:
    assert topics_of(f"prakerja {slow} bgt") == ("slow",)


@pytest.mark.parametrize(
    "stuck", ["loading terus", "loading mulu", "loading terusss", "muter2 doang", "keeps loading"]
)
def test_endless_loading_is_slow(stuck: str) -> None:
    assert topics_of(f"halaman prakerja {stuck}") == ("slow",)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Errorrrr LAGI", "error lagi"),
        ("gabisa login", "ga bisa login"),
        ("muter2 doang", "muter muter doang"),
        ("@PrakerjaID min", "prakerja min"),
        ("@user5513 cek https://t.co/aB3kLm9Qz ya", "cek ya"),
        ("#KartuPrakerja", "kartu prakerja"),
        ("l0gin 3rr0r", "login error"),
        ("ga kebuka2", "ga kebuka kebuka"),
        ("udh dr td", "udah dari tadi"),
        ("webnya", "web nya"),
        ("can't sign up", "ga bisa daftar"),
    ],
)
def test_normalise_gives_the_canonical_spelling(raw: str, canonical: str) -> None:
    assert normalise(raw) == canonical


# --- topic conventions ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "topics"),
    [
        ("login prakerja error", ("login", "down")),
        ("daftar prakerja error mulu", ("signup", "down")),
        ("upload ktp error terus", ("down", "other")),
        ("upload ktp error 'file tidak didukung'", ("other",)),
        ("verifikasi nomor hp error, katanya kode salah", ("otp",)),
        ("request timeout terus pas buka prakerja", ("slow",)),
        ("prakerja 504 gateway timeout", ("slow", "down")),
        ("buka prakerja malah ERR_CONNECTION_TIMED_OUT", ("slow", "down")),
    ],
)
def test_topic_conventions(text: str, topics: tuple[str, ...]) -> None:
    assert topics_of(text) == topics


def test_topics_are_listed_in_topics_order() -> None:
    verdict = classify("captcha ga muncul, web lemot, otp ga masuk, daftar error, login gagal")
    assert verdict.topics == TOPICS


def test_as_json_carries_text_and_verdict() -> None:
    assert classify("prakerja down").as_json("prakerja down") == {
        "text": "prakerja down",
        "complaint": True,
        "topics": ["down"],
    }


@pytest.mark.parametrize(
    ("complaint", "topics"), [(True, ()), (False, ("down",)), (True, ("down", "login"))]
)
def test_classification_rejects_inconsistent_topics(
    complaint: bool, topics: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="topics"):
        Classification(complaint=complaint, topics=topics)


# --- input that must never raise -----------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "😭😭😭🙏🙏",
        "🧵👇",
        "....!!!???",
        "@user1 @user2 https://t.co/abc",
        "2" * 500,
        "a-a-a-a" * 200,
        "prakerja error " * 20_000,
        "é" * 10_000,
        "\x00\u200b\ufeff",
    ],
)
def test_any_input_gives_a_consistent_verdict(text: str) -> None:
    verdict = classify(text)
    assert verdict.complaint == bool(verdict.topics)
    assert set(verdict.topics) <= set(TOPICS)


# --- the development set ---------------------------------------------------------------------
def test_dev_set_complaint_f1_stays_above_the_floor() -> None:
    if not DEV_SET.is_file():
        pytest.skip(f"no development set at {DEV_SET}")
    rows = [json.loads(line) for line in DEV_SET.read_text("utf-8").splitlines() if line]
    tp = fp = fn = 0
    for row in rows:
        got = classify(row["text"]).complaint
        tp += got and row["complaint"]
        fp += got and not row["complaint"]
        fn += row["complaint"] and not got
    f1 = 2 * tp / (2 * tp + fp + fn)
    assert f1 >= DEV_F1_FLOOR
