"""Outage-complaint classifier: is a post about Kartu Prakerja an outage complaint, and on what.

Rule-based and stdlib-only. ``classify`` normalises a post (``normalise``: case, URLs,
handles, elongations, slang spellings, digits used as letters), cuts it into clauses,
finds the problems each clause reports, then applies the label rules of
``shared/data/complaints-id/README.md``: failing the selection, incentive payments,
tutorials, resolved or past problems, hopes and predictions, maintenance announcements,
other services, the poster's own connection, device or mistake, and figurative uses of
the trigger words are not outage complaints.

A generic error adds ``down`` to the step it happened at, unless the post quotes a
validation message ("file tidak didukung", "kode salah"); a timeout is ``slow``, and also
``down`` when it is a gateway or connection timeout.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

__all__ = ["MAX_CHARS", "TOPICS", "Classification", "classify", "normalise"]

#: Every topic, in the order in which ``Classification.topics`` lists them.
TOPICS = ("login", "signup", "otp", "slow", "down", "other")
#: Characters of a post that are read: X's limit for a long post. Time is linear in it.
MAX_CHARS = 25_000


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one post.

    ``topics`` is a subset of ``TOPICS`` in ``TOPICS`` order, and is ``()`` exactly when
    ``complaint`` is false (``__post_init__`` raises ``ValueError`` otherwise).
    """

    complaint: bool
    topics: tuple[str, ...]

    def __post_init__(self) -> None:
        ordered = tuple(topic for topic in TOPICS if topic in self.topics)
        if ordered != self.topics or len(set(self.topics)) != len(self.topics):
            raise ValueError(f"topics must be distinct and in TOPICS order: {self.topics!r}")
        if self.complaint != bool(self.topics):
            raise ValueError("topics must be empty exactly when complaint is false")

    def as_json(self, text: str) -> dict[str, object]:
        """The JSON object printed for ``text``: ``{"text", "complaint", "topics"}``."""
        return {"text": text, "complaint": self.complaint, "topics": list(self.topics)}


_NOT_A_COMPLAINT = Classification(complaint=False, topics=())


def classify(text: str) -> Classification:
    """Classify one post from its first ``MAX_CHARS`` characters.

    Never raises for any ``str`` (empty, whitespace, emoji-only, very long).
    """
    canon = normalise(text[:MAX_CHARS])
    if not canon or _excused(canon):
        return _NOT_A_COMPLAINT
    readings = _read_post(_clauses(canon), validation=_VALIDATION.search(canon) is not None)
    topics: set[str] = set()
    for problem in _open_problems(readings, ongoing=_ONGOING.search(canon) is not None):
        topics |= problem
    if not topics:
        return _NOT_A_COMPLAINT
    for reading in readings:
        topics |= reading.steps
    if not (_ANCHOR.search(canon) or topics - {"slow", "down"}):
        return _NOT_A_COMPLAINT
    return Classification(complaint=True, topics=tuple(t for t in TOPICS if t in topics))


def _words(text: str) -> frozenset[str]:
    """The set of space-separated words in ``text``."""
    return frozenset(text.split())


def _rx(*alternatives: str) -> re.Pattern[str]:
    """Compile whole-word ``alternatives`` (each may hold ``|``) into one pattern."""
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


# --- normalisation ----------------------------------------------------------------------
# Canonical spelling -> the variants people type (slang, abbreviations, English). A token
# is also looked up with every doubled letter squeezed ("errorr", "lemott", "nggakk").
_VARIANT_GROUPS: Mapping[str, str] = {
    "ga": "gak gk g gx nggak ngga ngak nga enggak engga egak kagak kaga ndak nda tidak tdk "
    "tak ora not dont doesnt didnt isnt arent wasnt never aint",
    "ga bisa": "gabisa gbs gbsa gbisa gakbisa gkbisa ngabisa nggakbisa ngakbisa gabs gabis "
    "tdkbisa cant cannot couldnt unable",
    "ga ada": "gada gaada gakada tdkada",
    "ga mau": "gamau gakmau wont ogah",
    "belum": "blm blum blom belom blon",
    "bisa": "bs bsa",
    "udah": "udh dah sudah sdh uda udeh already",
    "banget": "bgt bngt bgd bingit",
    "terus": "trs trus teros mulu melulu mlulu terusan",
    "tetap": "tetep ttp ttep tetp",
    "dari": "dr dri",
    "tadi": "td tdi",
    "tapi": "tp tpi but tetapi namun",
    "yang": "yg yng",
    "lagi": "lg lgi again",
    "gimana": "gmn gmna gimna gmana bagaimana",
    "kenapa": "knp knapa napa ngapa why",
    "padahal": "pdhl pdhal padahl pdahal",
    "kemarin": "kmrn kemaren kmren kmarin kmaren kemarn yesterday",
    "sekarang": "skrg skrng skr skrang now",
    "masih": "msh masi still",
    "sampai": "sampe ampe smpe smpai sampek until",
    "kalau": "klo kalo klau klw kalu if",
    "semoga": "moga smoga mudahan hopefully hope",
    "akhirnya": "akhrnya finally",
    "aja": "ajah saja aj",
    "pake": "pakai",
    "doang": "doank",
    "sama": "sm",
    "tolong": "tlg tolongin",
    "ternyata": "trnyata ternyta",
    "error": "eror err erorr ngerror ngeror erro",
    "lemot": "lemod lmot",
    "lelet": "lelot",
    "lambat": "slow lamban slw sluggish",
    "ngelag": "lag ngeleg ngelek nglag lagging laggy",
    "hang": "ngehang ngeheng freeze ngefreeze frozen hanging",
    "loading": "lodeng loding loadin",
    "load": "dimuat memuat muat loaded ngeload loads",
    "keload": "termuat kemuat",
    "buka": "bukak open opened membuka opening",
    "dibuka": "dibukak",
    "kebuka": "kbuka kebukak terbuka",
    "akses": "access accessed mengakses reached reach accessible",
    "masuk": "msk masok",
    "muncul": "mncl nongol appear appears appeared tampil",
    "dateng": "datang dtg dtng arrive arrived arrives",
    "nyampe": "nyampai nyampek received receive delivered",
    "kirim": "send sent ngirim mengirim",
    "kode": "code kd",
    "verifikasi": "verif verification verify ferifikasi verivikasi",
    "aktivasi": "activation aktifasi",
    "email": "imel surel",
    "login": "lgn signin logon",
    "logout sendiri": "kelogout terlogout kelogot",
    "logout": "logot logoff signout",
    "daftar": "dftr daptar mendaftar pendaftaran registrasi register regis regist "
    "registration signup",
    "gagal": "ggl gagl failed fail fails failing failure",
    "susah": "ssh sulit susa difficult kesulitan kesusahan",
    "nunggu": "nungguin menunggu tunggu nunguin waiting wait",
    "upload": "unggah mengunggah diunggah diupload aplod uplod ngupload ngunggah upld",
    "ktp": "ektp",
    "selfie": "swafoto selfi selpi",
    "foto": "photo poto",
    "captcha": "captca capcha kapca recaptcha catpcha captha kapcha",
    "tombol": "button btn",
    "insentif": "intensif incentive insentive insentip intensive",
    "sesi": "session",
    "kadaluarsa": "expired expire kadaluwarsa kedaluwarsa kedaluarsa",
    "lancar": "smooth",
    "sibuk": "busy",
    "web": "website situs site laman webside portal webpage",
    "halaman": "page hlmn",
    "aplikasi": "app apk apps application",
    "server": "sever serper servers",
    "sistem": "system sistim",
    "tumbang": "tepar ambruk jebol lumpuh koit modar kolaps collapse collapsed",
    "blank": "ngeblank ngeblang blang",
    "crash": "crashed crashing ngecrash crashes",
    "stuck": "stak nyangkut ketahan stuk",
    "mentok": "mentog mandek",
    "respon": "respond merespon merespons response responsif respons",
    "ilang": "hilang lenyap",
    "hp": "handphone hape ponsel",
    "sinyal": "signal",
    "koneksi": "connection",
    "gabung": "join joined",
    "tes": "test",
    "form": "formulir forms",
    "akun": "account",
}
# Words that only map to themselves, listed so that doubled letters still find them.
_SELF_WORDS = (
    "down putih mati ngadat macet otp lolos seleksi normal aman stabil pulih beres berhasil "
    "kesalahan gangguan muter timeout parah invalid telat prakerja dashboard tutorial "
    "maintenance semangat sms kuota dikirim terkirim kebaca diakses"
)
_NEG_PREFIXES = ("nggak", "enggak", "ngga", "engga", "gak", "tdk", "tak", "ga", "gk", "g")
# What may follow a glued negation ("gamasuk", "gakebuka", "tdkbisa").
_AFTER_GLUED_NEG = _words(
    "bisa masuk muncul kebuka dibuka dateng nyampe respon kirim terkirim dikirim kelar load "
    "keload kebaca mau lolos error lemot berhasil lancar valid jalan"
)
# Nouns that take a glued "-ku" ("hpku", "otakku", "punyaku").
_KU_BASES = _words(
    "hp akun otak sinyal jaringan koneksi internet wifi laptop mood hati hidup kepala pikiran "
    "perasaan mental jiwa jodoh semangat dompet badan komputer browser punya email nomor"
)
_LEET = str.maketrans("013457", "oieast")


def _squeeze(word: str) -> str:
    """``word`` with every run of one letter reduced to one ("errorr" -> "eror")."""
    return re.sub(r"([a-z])\1+", r"\1", word)


def _variant_table(groups: Mapping[str, str], self_words: str) -> dict[str, str]:
    """Variant (and its squeezed form) -> canonical. Raises ``ValueError`` on a clash."""
    pairs = [(c, v) for c, vs in groups.items() for v in (c, *vs.split())]
    pairs += [(word, word) for word in self_words.split()]
    table: dict[str, str] = {}
    for canonical, variant in pairs:
        squeezed = _squeeze(variant)
        for key in (variant, squeezed) if len(squeezed) >= 3 else (variant,):
            if table.setdefault(key, canonical) != canonical:
                raise ValueError(f"{key!r} maps to both {table[key]!r} and {canonical!r}")
    return table


_VARIANTS = _variant_table(_VARIANT_GROUPS, _SELF_WORDS)

_URL = re.compile(r"https?://\S+|www\.\S+|\b(?:t\.co|bit\.ly|s\.id)/\S*")
_DOMAIN = re.compile(r"\b([a-z0-9]+)\.(?:go\.id|co\.id|ac\.id|com|id|net|org)\b")
_HANDLE = re.compile(r"@(prakerja)?\w*")
_GLUED_PRAKERJA = re.compile(r"(?<=[a-z0-9])prakerja|prakerja(?=[a-z0-9])")
_APOSTROPHE = re.compile(r"(?<=[a-z])['’`](?=[a-z])")
_HYPHEN_REDUP = re.compile(r"\b([a-z]+)-\1\b")
_HYPHEN_PREFIX = re.compile(r"\b(ke|di|nge|ter|e|m|se|re)-(?=[a-z])")
_DIGIT_REDUP = re.compile(r"\b([a-z]{2,})2([a-z]*)\b")
_MIXED_TOKEN = re.compile(r"\b(?=[a-z0-9]*[a-z])[a-z0-9]*[0-9][a-z0-9]*\b")
_NUMBER_WITH_UNIT = re.compile(
    r"\d+(?:x|an|rb|k|jt|am|pm|wib|nd|th|st|rd|gb|mb|kb|mbps|menit|jam|hari|s|m|h)"
)
_RUN3 = re.compile(r"([a-z])\1{2,}")
_TOKEN = re.compile(r"[a-z0-9]+|[.!?;,\n]")
# Multi-word spellings, rewritten on the canonical token string.
_PHRASES = tuple(
    (re.compile(rf"\b(?:{pattern})\b"), replacement)
    for pattern, replacement in (
        (r"log in|sign in", "login"),
        (r"log out|sign out", "logout"),
        (r"sign up|bikin akun|buat akun|membuat akun", "daftar"),
        (r"force clos\w*|fc", "crash"),
        (r"(?<!akun )keluar sendiri|(?:nutup|menutup|tertutup|ketutup) sendiri", "crash"),
        (r"time out|timed out|timing out|times out|rto", "timeout"),
        # Browser errors (ERR_CONNECTION_TIMED_OUT): the site's fault, not the poster's link.
        (r"(?:error )?koneksi (timeout|refused|reset|closed)", r"connection \1"),
        (r"(?:lagi |jadi )?down banget", "sedih banget"),
        (r"something went wrong|an error occurred|terjadi (?:suatu )?kesalahan", "error"),
        (r"down to earth", "membumi"),
        (r"gagal (?:fokus|paham|move on)|salah fokus", "bingung"),
        (r"trial (?:and )?error", "coba coba"),
        (r"mudah mudahan", "semoga"),
        (r"tak kunjung|ga kunjung", "ga"),
        (r"ga (?:found|ditemukan)", "notfound"),
    )
)


def normalise(text: str) -> str:
    """Return the canonical form of ``text`` that the rules read.

    Lowercase ASCII tokens separated by single spaces; the clause marks ``. , ! ? ;``
    and line breaks are kept as tokens. URLs and handles are removed (``@PrakerjaID``
    becomes ``prakerja``), elongations are collapsed, slang spellings are replaced by
    one canonical word and glued negations are split (``gabisa`` -> ``ga bisa``).
    """
    text = _strip_noise(text)
    canon = " ".join(_canon_token(token) for token in _TOKEN.findall(text))
    for pattern, replacement in _PHRASES:
        canon = pattern.sub(replacement, canon)
    return canon.strip()


def _strip_noise(text: str) -> str:
    """Fold case and width, drop URLs and handles, undo hyphens, 2-reduplication and leet."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"\bKO\b", " tumbang ", text)  # "servernya KO"; lowercase "ko" is "kok"
    text = _URL.sub(" ", text.casefold())
    text = _DOMAIN.sub(r"\1", text)
    text = _HANDLE.sub(lambda m: " prakerja " if m.group(1) else " ", text)
    text = _GLUED_PRAKERJA.sub(" prakerja ", text.replace("#", " "))
    text = _APOSTROPHE.sub("", text)
    text = _HYPHEN_REDUP.sub(r"\1 \1", text)
    text = _HYPHEN_PREFIX.sub(r"\1", text).replace("-", " ").replace("_", " ")
    text = _DIGIT_REDUP.sub(r"\1 \1\2", text)
    return _MIXED_TOKEN.sub(_unleet, text)


def _unleet(match: re.Match[str]) -> str:
    """Read digits as letters in "3rr0r" or "l0gin", not in "5x", "g13" or "10menit"."""
    token = match.group(0)
    letters = sum(char.isalpha() for char in token)
    if letters < 3 or not re.search(r"[0-9][a-z]", token) or _NUMBER_WITH_UNIT.fullmatch(token):
        return token
    return token.translate(_LEET)


@lru_cache(maxsize=1 << 16)
def _canon_token(token: str) -> str:
    """The canonical spelling of one token (may be two words: "gabisa" -> "ga bisa").

    Every "-nya" the token ends with is split off ("errornyanya" -> "error nya nya"):
    in a loop, so a token of thousands of them costs time linear in its length.
    """
    token = _RUN3.sub(r"\1", token)  # a prefix of the result has no runs of 3 either
    suffixes = 0
    while token.endswith("nya") and len(token) >= 6 and _whole_word(token) is None:
        token, suffixes = token[:-3], suffixes + 1
    word = _whole_word(token)
    if word is None:
        base = token[:-2]
        ku = token.endswith("ku") and (_lookup(base) or base) in _KU_BASES
        word = f"{_lookup(base) or base} ku" if ku else token
    return word + " nya" * suffixes


def _whole_word(token: str) -> str | None:
    """``token`` as a known variant, or as a glued negation ("gabisa" -> "ga bisa")."""
    known = _lookup(token)
    if known is not None:
        return known
    for prefix in _NEG_PREFIXES:
        rest = _lookup(token[len(prefix) :]) if token.startswith(prefix) else None
        if rest in _AFTER_GLUED_NEG and len(token) - len(prefix) >= 3:
            return f"ga {rest}"
    return None


#: Longer tokens are no variant even squeezed (a token has no runs of three letters left
#: when it is looked up, so squeezing at most halves it).
_LONGEST_LOOKUP = 2 * max(map(len, _VARIANTS)) + 2


def _lookup(token: str) -> str | None:
    """The canonical word for ``token`` or its squeezed form, if it is a known variant."""
    if len(token) > _LONGEST_LOOKUP:
        return None
    found = _VARIANTS.get(token)
    if found is None and len(squeezed := _squeeze(token)) >= 3:
        found = _VARIANTS.get(squeezed)
    return found


# --- clauses ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Clause:
    text: str
    question: bool


_CLAUSE_MARKS = frozenset(".!?;,\n")
_CONTRASTS = _words("tapi padahal untung sedangkan sementara cuma eh")
# Conjunctions that open a new clause (and stay at its start).
_CLAUSE_OPENERS = _words("tapi padahal untung sedangkan sementara")


def _clauses(canon: str) -> list[_Clause]:
    """Split canonical text at clause marks and before contrastive conjunctions."""
    clauses: list[_Clause] = []
    words: list[str] = []
    for word in [*canon.split(" "), "."]:
        if word in _CLAUSE_MARKS or (word in _CLAUSE_OPENERS and words):
            if words:
                clauses.append(_Clause(" ".join(words), question=word == "?"))
            words = [word] if word in _CLAUSE_OPENERS else []
        elif word:
            words.append(word)
    return clauses


# --- lexicons: regular expressions over canonical text ---------------------------------------
_SITE = r"(?:web|server|aplikasi|prakerja|halaman|sistem|dashboard)"
_ACCESS = (
    r"(?:buka|dibuka|kebuka|akses|diakses|load|keload|connect|terhubung|dipake|digunakan"
    r"|masuk (?:ke )?(?:web|halaman|aplikasi|prakerja|dashboard))"
)
_OTHER_SERVICES = (
    r"bpjs\w*|sscasn|cpns|pppk|shopee|tokopedia|tokped|lazada|bukalapak|blibli|tiktok"
    r"|instagram|ig|twitter|facebook|fb|youtube|netflix|spotify|zoom|gmeet|google meet"
    r"|peduli ?lindungi|satu ?sehat|mbanking|mobile banking|bca|bri|brimo|bni|mandiri|livin"
    r"|jenius|ovo|gopay|linkaja|shopeepay|krl|kai|commuter|ojol|gojek|grab|kampus|siakad"
    r"|krs\w*|sekolah|dapodik|pddikti|lpdp|djp|efin|coretax|samsat|jkn|siapkerja|karirhub"
    r"|dukcapil|disdukcapil|pln|indihome|telkomsel|tri|xl|axis|pajak|spt|efiling|bank|pemda"
    r"|imigrasi|paspor|kemendikbud|dikti"
)
_OTHER_SERVICE = _rx(_OTHER_SERVICES)
_PRAKERJA = _rx("prakerja")
_ANCHOR = _rx(
    "prakerja|web|server|aplikasi|halaman|sistem|dashboard|akun|daftar|login|otp|kode"
    "|captcha|upload|ktp"
)

_NEGATORS = _words("ga belum tanpa bebas anti bukan no zero")
_NEGATION_FILLERS = _words("ada yang pernah kok sih juga terlalu begitu pake")
# A trigger whose subject is one of these is about the poster, not the site.
_MIND_OR_DEVICE = _words(
    "otak kepala pikiran mood hati hidup perasaan mental jiwa semangat jodoh dompet badan hp "
    "laptop pc komputer sinyal jaringan koneksi internet wifi provider listrik lampu browser"
)
# The same, named after the trigger ("lemot banget otak gue", "error 404 jodoh").
_OWN_AFTER_TRIGGER = _words(
    "otak kepala pikiran mood hati hidup semangat jodoh hp laptop sinyal jaringan koneksi "
    "internet wifi"
)
_INTENSIFIERS = _words("banget parah amat nya sekali bener juga")
_PERSONS = _words("aku gue gw gua saya aq ak diriku kamu lu")
_PERSON_FILLERS = _words("yang lagi jadi emang memang tuh nih sih ikut juga ku")
# Before a device word, these make it a place or a thing, not the subject ("di hp", "nomor hp").
_NOT_A_SUBJECT_AFTER = _words("di pake lewat via dari ke dan sama pinjem ganti nomor no")
_PAYMENT = _rx(
    "insentif|cair|pencairan|dicairkan|saldo|ewallet|rekening|transfer|ditransfer|refund"
    "|pembayaran|bayar|uang|duit|dana"
)


@dataclass(frozen=True, slots=True)
class _Trigger:
    """A problem report that needs no step or element next to it."""

    pattern: re.Pattern[str]
    topics: frozenset[str]
    negatable: bool  # "ga error", "tanpa error" report no problem
    person: bool  # "aku yang lemot", "aku lagi down" are about a person


def _trigger(topics: str, *alternatives: str, negatable: bool = False) -> _Trigger:
    """A trigger; a negatable one is also dropped when a person is its subject."""
    return _Trigger(_rx(*alternatives), _words(topics), negatable, negatable)


_CODE = r"(?:50[0-35-9]|52\d|429|403|404|5xx)"
# An HTTP error code said as one ("kena 503", "502 bad gateway", "503 terus"), not "500 ribu".
_CODE_BEFORE = r"(?:error|kena|muncul|dapet|dapat|http|status|kode|halaman) "
_CODE_AFTER = r" (?:error|bad|internal|service|gateway|terus|lagi|forbidden|too|notfound)"
_NOT_AMOUNT = r"(?! (?:ribu|rb|juta|jt|orang|peserta|pendaftar|k)\b)"
_GENERIC_ERROR = _rx("error|gangguan")
_TRIGGERS = (
    _trigger("down", "down|tumbang|ngadat|crash", negatable=True),
    _trigger("slow", "lemot|lelet|lambat|ngelag|hang|lola", negatable=True),
    _trigger(
        "down",
        rf"{_CODE_BEFORE}{_CODE}{_NOT_AMOUNT}|{_CODE} {_CODE}|{_CODE}{_CODE_AFTER}",
        rf"{_SITE} {_CODE}{_NOT_AMOUNT}",
        r"bad gateway|service unavailable|too many requests|blank|(?:white|blank) screen",
        r"(?:server|sistem)(?: \w+){0,3} sibuk|sibuk (?:\w+ )?server",
        r"(?:layar|halaman|cuma|tampilan|jadi) putih|putih (?:doang|aja|polos|blank|kosong)",
        rf"(?:ga|belum) (?:\w+ )?(?:kebuka|keload|loading)|(?:susah|gagal) {_ACCESS}",
        rf"(?:ga|belum)(?: \w+){{0,2}} (?:bisa|dapat) (?:\w+ )?{_ACCESS}",
        r"ga mau (?:\w+ )?(?:buka|kebuka|dibuka|load|keload)",
        r"(?:halaman|layar|page|web|dashboard|aplikasi)(?: \w+){0,2} kosong",
        rf"connection (?:refused|reset)|dns probe|{_SITE}(?: \w+){{0,3}} (?:mati|macet|offline)",
    ),
    _trigger(
        "slow",
        r"loading (?:\w+ ){0,2}(?:terus|lama|doang|aja|forever|lagi|muter|ga (?:kelar|selesai))",
        r"(?:cuma|keeps|stuck|masih|lama|infinite|still) loading|loading nya lama",
        r"(?:stuck|mentok) (?:\w+ )?loading|muter (?:muter|terus|doang|aja)|timeout",
        r"ga kelar kelar|lama (?:banget )?(?:loading|load|kebuka|buka)",
        rf"{_SITE}(?: \w+){{0,2}} (?:berat|pelan)",
    ),
    _trigger(
        "slow down",
        rf"gateway timeout|connection timeout|{_CODE_BEFORE}504{_NOT_AMOUNT}|504{_CODE_AFTER}",
    ),
    _trigger(
        "login",
        r"logout (?:sendiri|terus|otomatis)|auto logout|otomatis logout",
        r"sesi (?:\w+ ){0,2}(?:berakhir|habis|kadaluarsa|timeout)",
        r"(?:minta|disuruh|suruh) login ulang|login ulang (?:terus|lagi)",
        r"akun (?:\w+ ){0,2}(?:terkunci|kekunci|dikunci|diblokir|locked|suspend\w*)",
    ),
    _trigger("otp", r"nunggu(?: \w+){0,2} (?:otp|kode|sms|verifikasi|link)"),
    _trigger("down", r"nunggu(?: \w+){0,3} kebuka"),
)
# A step's own validation message: the step's topic only, no "down".
_VALIDATION = _rx(
    r"ga didukung|not supported|unsupported|format (?:\w+ )?(?:salah|ga sesuai|ga valid|invalid)"
    r"|kode salah|salah kode|invalid|ga valid|terlalu besar|kebesaran|melebihi|ga sesuai"
    r"|kadaluarsa"
)

# Failures that report a problem only next to the step or part that fails.
_SOFT = (
    r"gagal|ga bisa|ga dapat|belum bisa|susah|stuck|mentok|ga berhasil|ga jalan|ga working"
    r"|ga berfungsi|bermasalah|(?<!ga )masalah|kendala|trouble|problem|error|ujian kesabaran"
    r"|gini amat|ga lancar|ga (?:\w+ )?respon|ditolak|ilang|ga kelar|ga selesai|invalid"
    r"|kadaluarsa|ga valid|notfound"
    r"|ga mau (?:ke\w+|di\w+|masuk|nerima|muncul|jalan|load|loading|kirim)"
    r"|dilempar (?:balik|keluar|lagi|ke)|mental (?:terus|lagi|ke)"
    r"|ga (?:mau |bisa )?(?:submit|kesubmit|disubmit|kekirim|lanjut|dilanjut)"
    r"|(?:balik|kembali) (?:lagi )?ke (?:halaman )?(?:awal|login|depan|utama)"
)
_ARRIVAL = (
    r"(?:masuk|dateng|nyampe|sampai|terkirim|dikirim|kirim|muncul|keluar|ada|diterima|dapet"
    r"|dapat|nerima|terima|get)"
)


@dataclass(frozen=True, slots=True)
class _Element:
    """A step or part of the site that fails when ``failure`` is said next to it."""

    topic: str
    pattern: re.Pattern[str]
    failure: re.Pattern[str]
    borrows: bool = True  # may be named in the clause before ("OTP masuk, tapi invalid")


# "susah ga sih?", "gagal ga?" ask; they do not report.
_SOFT_FAILURE = re.compile(rf"\b(?:{_SOFT})\b(?! ga (?:sih|ya)\b)(?! ga$)")
_LOGIN = _rx(
    r"login|masuk akun|masuk ke akun|klik masuk|tombol masuk|password|sandi",
    r"(?:bisa|gagal|susah|mau|coba) masuk"
    r"(?! (?:ke |di )?(?:web|halaman|aplikasi|prakerja|dashboard))",
)
_SIGNUP = _rx(
    r"(?<!status )daftar|gabung|ikut (?:\w+ )?gelombang|tes motivasi|form|isi data diri"
    r"|data diri|akun baru"
)
_ELEMENTS = (
    _Element("login", _LOGIN, _SOFT_FAILURE),
    _Element("signup", _SIGNUP, _SOFT_FAILURE),
    _Element(
        "otp",
        _rx(
            r"otp|kode|sms|token|link|aktivasi|konfirmasi|terverifikasi|diverifikasi",
            r"verifikasi(?! (?:wajah|muka|face|ktp|foto|selfie|data|nik|rekening))",
        ),
        _rx(
            rf"(?:ga|belum)(?: \w+){{0,2}} {_ARRIVAL}",
            r"(?:ga|belum) (?:\w+ )?(?:terverifikasi|diverifikasi|teraktivasi|aktif)",
            r"telat|(?<!berapa )lama|delay|kadaluarsa|invalid|ga valid|salah|ditolak|gagal"
            r"|ga bisa|error"
            r"|stuck|susah|ga berlaku|ga cocok|ga sesuai|kirim ulang|resend",
        ),
    ),
    _Element(
        "other",
        _rx(
            r"upload|ktp|selfie|foto|dokumen|berkas|captcha|wajah|face|liveness|progress bar"
            r"|kamera"
        ),
        _rx(
            _SOFT,
            r"ga (?:\w+ )?(?:kebaca|terbaca|kedeteksi|terdeteksi|muncul|keluar|keupload"
            r"|terupload|upload|kesimpen|tersimpan)",
            r"upload ulang|ga didukung|terlalu besar|kebesaran|blur|ga sesuai|salah",
        ),
    ),
    _Element(
        "other",
        _rx("tombol|kolom|field|dropdown|checkbox|form"),
        _rx(
            r"ga (?:\w+ )?(?:respon|berfungsi|jalan|ngaruh|aktif|muncul|diklik|dipencet|ditekan"
            r"|diisi|dipilih|discroll|diketik|diedit|dicentang)",
            r"ga ada reaksi|disabled|does nothing|diem aja|ga ngapa(?: ngapain)?|ilang|mati",
        ),
        borrows=False,
    ),
)
_COMPLETED_STEP = _rx(
    r"(?:udah|berhasil|sukses|abis|habis|setelah|selesai|sempat) (?:bisa )?(?:daftar|gabung|login)"
)

# Clause contexts.
_HOPE = _rx(
    r"semoga|hope|berharap|harap|doain|bakal|akan|nanti|besok|prediksi|gonna|siap siap"
    r"|jangan sampai|jangan jangan|amit amit"
)
_RECOVERY = _rx("pulih|normal|dibenerin|diperbaiki|benerin|perbaiki|beres|fix|membaik")
_OWN_CONNECTION = _rx(
    r"(?:sinyal|jaringan|koneksi|internet|wifi|provider|kuota internet|kuota data|paket data"
    r"|vpn|dns)\w*(?: (?!ga\b|bukan\b)\w+){0,3}"
    r" (?:jelek|lemot|lelet|lambat|ilang|putus|down|error|mati|lemah|buruk"
    r"|abis|habis|ngelag|parah|busuk|ga stabil)",
    r"gara gara (?:sinyal|jaringan|koneksi|internet|wifi|hp|laptop)",
    r"(?:hp|laptop)(?: ku)?(?: \w+){0,2} (?:rusak|hang|mati|lowbat|penuh|kentang)",
)
_SELECTION = _rx(r"lolos|seleksi|lulus|keterima|status (?:\w+ )?gagal|re[zj]eki\w*|pengumuman")
_ELIGIBILITY = _rx(
    r"syarat|boleh|umur|usia|apakah|emang|memang|pns|asn|tni|polri|mahasiswa|pelajar"
    r"|(?:yang|kalau) udah|pernah dapet"
)
_PURPOSE = re.compile(r"\b(?:biar|supaya|agar|so that|to avoid)\b.*$")

_SUCCESS = _rx(
    r"lancar|aman|normal|stabil|pulih|beres|berhasil|sukses|working fine|works fine|work fine"
    r"|fine for me|working again|bisa lagi|(?:udah|langsung|akhirnya) (?:\w+ )?bisa|udah kebuka"
    r"|kebuka lagi|fixed|teratasi|membaik|lebih (?:baik|stabil|cepat)|udah up|back up"
    r"|back online"
)
_OFF_SITE_SUBJECT = _rx(
    r"jaringan|sinyal|wifi|internet|koneksi|yang lain|\w+ lain|lainnya|hp|laptop", _OTHER_SERVICES
)
_TIME_SHIFT = _rx("sekarang|udah|akhirnya|hari ini|pagi ini|barusan|kembali|lagi|langsung")
# "dulu" is "formerly", except after an imperative where it is "first" ("cek dulu").
_FIRST_DULU = "".join(
    rf"(?<!\b{verb} dulu)"
    for verb in sorted(
        _words(
            "cek coba tunggu nunggu sabar login daftar download isi baca pastikan siapin siapkan "
            "refresh istirahat bentar aja"
        )
    )
)
_PAST_STRONG = re.compile(
    rf"^dulu\b|\bdulu\b{_FIRST_DULU}(?! *$)"
    r"|\b(?:waktu itu|tahun lalu|bulan lalu|minggu lalu|last (?:year|week|time)|back then)\b"
    r"|\bgelombang (?:\w+ )?(?:lalu|sebelumnya|kemarin)\b"
)
_PAST_WEAK = re.compile(r"(?<!dari )(?<!sejak )\b(?:kemarin|semalam)\b")
_PRESENT = _rx("sekarang|hari ini|masih|now")
_ONGOING = _rx(
    r"masih|sampai sekarang|hingga (?:kini|sekarang)|sampai saat ini|sejak|hari ini|right now"
    r"|(?:dari|sejak) (?:tadi|pagi|subuh|semalam|kemarin|jam)"
)

# Post contexts.
_TUTORIAL_START = re.compile(
    r"^(?:tutorial|tips|tip|cara|panduan|trik|thread|utas|guide|how to|langkah)\b"
)
_TUTORIAL = _rx(
    r"tutorial|panduan|simak|(?:cek|baca) thread|thread ini|utas ini|caranya gini"
    r"|begini caranya|berikut caranya|jangan panik|solusi (?:nya )?(?:kalau|buat|untuk|bagi)"
    r"|(?:sabar|tenang) (?:ya|aja) (?:yang|buat|untuk|bagi)",
    r"kalau (?:\w+ ){1,6}(?:, )?(?:coba|pastikan|gunakan|pake|clear|hapus|cukup|tinggal|ganti)",
)
_NOT_A_TUTORIAL = _rx("tetap|masih|malah")
_MAINTENANCE = _rx("maintenance|pemeliharaan|perbaikan sistem|downtime")
_ANNOUNCEMENT = _rx(
    r"akan|dijadwalkan|terjadwal|scheduled|pengumuman|tanggal|tgl|pukul|wib|info|sampai dengan"
    r"|ketidaknyamanan"
)
# "kirain hp aku yang rusak, ternyata prakerja nya yang down"
_SITE_AT_FAULT = _rx(rf"ternyata (?:\w+ ){{0,2}}{_SITE}")
_OWN_MISTAKE = _rx(
    r"ternyata (?!(?:\w+ )?(?:bukan|ga) )(?:\w+ ){0,3}(?:aku|gue|gw|saya|ak|aq|sinyal|jaringan"
    r"|koneksi|internet|wifi|kuota|hp|salah|vpn|cache|browser|gara gara)",
    r"salah (?:ketik|input|masukin|masukkan|nulis|tulis|pencet|isi)|typo|my bad|my fault"
    r"|salah sendiri|human error",
    r"(?:nomor|email)(?: hp)?(?: nya)? (?:aku|ku|gue|gw|saya)(?: \w+){0,2}"
    r" (?:ga aktif|nonaktif|hangus|salah)",
)


# --- reading clauses ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Reading:
    """What one clause says, once its dead contexts are removed."""

    problems: frozenset[str]  # topics of the problems it reports
    steps: frozenset[str]  # login or signup, when the clause mentions doing that step
    success: bool  # it says the site works
    shift: bool  # it says "now", "already", "finally"
    past: bool  # it places itself in the past
    contrast: bool  # it opens with "tapi", "padahal", "cuma"
    elements: bool  # it names a step or part of the site


_SILENT = _Reading(frozenset(), frozenset(), False, False, False, False, False)


def _read_post(clauses: list[_Clause], *, validation: bool) -> list[_Reading]:
    """Read every clause; a strong past marker carries on until a clause speaks of now.

    With ``validation`` (the post quotes a validation message), "error" is that message.
    """
    readings: list[_Reading] = []
    previous = ""
    in_past = False
    for clause in clauses:
        text = _PURPOSE.sub("", clause.text).strip()
        in_past = bool(_PAST_STRONG.search(text)) or (in_past and not _PRESENT.search(text))
        reading = _read_clause(text, previous, question=clause.question, validation=validation)
        if in_past and not reading.past:
            reading = replace(reading, past=True)
        readings.append(reading)
        previous = "" if reading is _SILENT else text
    return readings


def _read_clause(text: str, previous: str, *, question: bool, validation: bool) -> _Reading:
    """Problems, steps and time of one clause (``previous`` lends it its elements)."""
    if not text or _clause_is_dead(text):
        return _SILENT
    # Selection results, payments and eligibility questions own their "gagal", "ga bisa".
    soft = not (_SELECTION.search(text) or _PAYMENT.search(text))
    soft = soft and not (question and _ELIGIBILITY.search(text))
    problems = _hard_topics(text, validation=validation)
    problems |= _element_topics(text, previous) if soft else frozenset()
    steps_text = _COMPLETED_STEP.sub(" ", text)
    success = _says_site_works(text)
    # A step that works ("login lancar") is not where the problem is.
    stepping = (soft or bool(problems)) and not (success and not problems)
    steps = frozenset(e.topic for e in _ELEMENTS[:2] if stepping and e.pattern.search(steps_text))
    return _Reading(
        problems=problems,
        steps=steps,
        success=success,
        shift=bool(_TIME_SHIFT.search(text)),
        past=bool(_PAST_STRONG.search(text) or _PAST_WEAK.search(text)),
        contrast=text.split(" ", 1)[0] in _CONTRASTS,
        elements=any(e.pattern.search(text) for e in _ELEMENTS),
    )


def _clause_is_dead(text: str) -> bool:
    """Another service, a hope or prediction, or the poster's own connection or device."""
    if _OTHER_SERVICE.search(text) and not _PRAKERJA.search(text):
        return True
    if _HOPE.search(text) and not _RECOVERY.search(text):
        return True
    return bool(_OWN_CONNECTION.search(text))


def _hard_topics(text: str, *, validation: bool) -> frozenset[str]:
    """Topics of the problems reported without a step: errors, down, slow, login drops.

    A generic error is ``down`` unless it is a quoted ``validation`` message.
    """
    topics: set[str] = set()
    for trigger in _TRIGGERS:
        matches = trigger.pattern.finditer(text)
        if any(
            _is_live(text, m, negatable=trigger.negatable, person=trigger.person) for m in matches
        ):
            topics |= trigger.topics
    errors = _GENERIC_ERROR.finditer(text)
    if not validation and any(_is_live(text, m, negatable=True) for m in errors):
        topics.add("down")
    return frozenset(topics)


def _element_topics(text: str, previous: str) -> frozenset[str]:
    """Topics of steps or parts named in this clause or the one before, failing here."""
    topics: set[str] = set()
    for element in _ELEMENTS:
        borrowed = element.borrows and element.pattern.search(previous) is not None
        named = element.pattern.search(text) is not None or borrowed
        failures = element.failure.finditer(text)
        if named and any(_is_live(text, m, negatable=True) for m in failures):
            topics.add(element.topic)
    return frozenset(topics)


def _is_live(text: str, match: re.Match[str], *, negatable: bool, person: bool = False) -> bool:
    """Whether ``match`` reports a problem of the site.

    False when it is negated ("ga error") or its subject is another service, a payment,
    a mind or the poster's own device ("web BPJS error", "otak aku error", "hp ngelag"),
    or, with ``person``, the poster ("aku yang lemot").
    """
    before = _words_before(text, match.start())
    if negatable and _negated(before, match.group(0)):
        return False
    window = " ".join(before[-3:])
    if _OTHER_SERVICE.search(window) or _PAYMENT.search(window):
        return False
    for at in range(max(0, len(before) - 3), len(before)):
        if before[at] in _MIND_OR_DEVICE and (
            at == 0 or before[at - 1] not in _NOT_A_SUBJECT_AFTER
        ):
            return False
        if person and before[at] in _PERSONS and set(before[at + 1 :]) <= _PERSON_FILLERS:
            return False
    after = text[match.end() : match.end() + _WINDOW].split()[:4]
    after = [w for w in after if w not in _INTENSIFIERS and not w.isdigit()]
    return not (after and after[0] in _OWN_AFTER_TRIGGER)


_WINDOW = 80  # characters around a match that hold the few words the checks look at


def _words_before(text: str, start: int) -> list[str]:
    """The last few whole words of ``text`` before ``start`` (bounded, so linear overall)."""
    words = text[max(0, start - _WINDOW) : start].split()
    return words[1:] if start > _WINDOW else words


def _negated(before: list[str], matched: str) -> bool:
    """Whether the words ``before`` negate ``matched``: "ga error", "ga ada error",
    "bukan prakerja nya yang lemot". A match that itself starts with "ga" is not negated."""
    if matched.split(" ", 1)[0] in _NEGATORS or not before:
        return False
    if before[-1] == "yang" and "bukan" in before[-5:]:
        return True
    for word in reversed(before[-3:]):
        if word in _NEGATORS:
            return True
        if word not in _NEGATION_FILLERS:
            return False
    return False


def _says_site_works(text: str) -> bool:
    """The clause reports the site working (not the network, the phone or another site)."""
    if _OFF_SITE_SUBJECT.search(text):
        return False
    matches = _SUCCESS.finditer(text)
    return any(not _negated(_words_before(text, m.start()), m.group(0)) for m in matches)


# --- the post ------------------------------------------------------------------------------
def _excused(canon: str) -> bool:
    """Whole-post contexts: a tutorial, a maintenance notice, the poster's own mistake or
    connection, or only other services."""
    tutorial = _TUTORIAL_START.search(canon) or _TUTORIAL.search(canon)
    if tutorial and not _NOT_A_TUTORIAL.search(canon):
        return True
    if _MAINTENANCE.search(canon) and _ANNOUNCEMENT.search(canon):
        return True
    own_fault = _OWN_MISTAKE.search(canon) or _OWN_CONNECTION.search(canon)
    if own_fault and not _SITE_AT_FAULT.search(canon):
        return True
    return bool(_OTHER_SERVICE.search(canon)) and not _PRAKERJA.search(canon)


def _open_problems(readings: list[_Reading], *, ongoing: bool) -> Iterator[frozenset[str]]:
    """Problem topics of clauses that are neither past (unless still going on) nor resolved."""
    for index, reading in enumerate(readings):
        if not reading.problems or (reading.past and not ongoing):
            continue
        if not _resolved(index, readings):
            yield reading.problems


def _resolved(index: int, readings: list[_Reading]) -> bool:
    """Whether a success report settles the problem of clause ``index``.

    A later "sekarang udah normal" or "it's working fine" does, unless it only says that
    another step works ("otp ga masuk, login lancar"); an earlier one does only for a
    problem placed in the past ("udah normal, tadi sempet error").
    """
    problem = readings[index]
    if problem.success and problem.shift:
        return True
    for other_index, other in enumerate(readings):
        if not other.success or other_index == index:
            continue
        if other_index > index and (other.shift or not (other.contrast or other.elements)):
            return True
        if other_index < index and other.shift and problem.past:
            return True
    return False
