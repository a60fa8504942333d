"""Status badges: badge/<component>.svg and the shields.io endpoint JSON."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from test_publish import tree_files

from monitor.badges import (
    INDICATOR_COLORS,
    LABEL_COLOR,
    STATUS_COLORS,
    Badge,
    text_width,
)
from monitor.config import Settings
from monitor.publish import COMPONENT_STATUSES, INDICATORS, publish_site
from monitor.store import Store

MakeSettings = Callable[..., Settings]
AddIncident = Callable[..., int]

SVG = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert(1)</script> & \"quotes\" 'too'"
ENDPOINT_KEYS = {"schemaVersion", "label", "message", "color", "isError"}


@pytest.fixture
def site(wave_store: Store, settings: Settings, now: datetime, tmp_path: Path) -> Path:
    return publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")


def read_svg(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return root


def message_fill(root: ET.Element) -> str:
    """The fill of the badge's right-hand box."""
    boxes = [r for r in root.iter(f"{SVG}rect") if "x" in r.attrib]
    assert len(boxes) == 1
    return boxes[0].attrib["fill"]


def contrast_with_white(color: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return 1.05 / (luminance + 0.05)


def test_every_component_and_the_page_have_a_badge(site: Path) -> None:
    badges = {name for name in tree_files(site) if name.startswith("badge/")}
    assert badges == {
        f"badge/{stem}.{ext}"
        for stem in ("status", "home", "login", "signup", "otp")
        for ext in ("svg", "json")
    }


@pytest.mark.parametrize(
    ("component", "label", "message", "status"),
    [
        ("home", "Beranda", "Normal", "operational"),
        ("login", "Masuk", "Gangguan besar", "major_outage"),
        ("signup", "Pendaftaran", "Kinerja menurun", "degraded_performance"),
        ("otp", "OTP", "Normal", "operational"),
    ],
)
def test_component_badge_says_the_status_in_words_and_colour(
    site: Path, component: str, label: str, message: str, status: str
) -> None:
    root = read_svg(site / "badge" / f"{component}.svg")
    assert root.attrib["role"] == "img"
    assert root.attrib["aria-label"] == f"{label}: {message}"
    assert root.findtext(f"{SVG}title") == f"{label}: {message}"
    assert [t.text for t in root.iter(f"{SVG}text") if "aria-hidden" not in t.attrib] == [
        label,
        message,
    ]
    assert message_fill(root) == STATUS_COLORS[status]
    endpoint = json.loads((site / "badge" / f"{component}.json").read_text(encoding="utf-8"))
    assert endpoint == {
        "schemaVersion": 1,
        "label": label,
        "message": message,
        "color": STATUS_COLORS[status],
        "isError": False,
    }


def test_page_badge_carries_the_banner(site: Path) -> None:
    root = read_svg(site / "badge" / "status.svg")
    assert root.attrib["aria-label"] == "Status Kartu Prakerja: Gangguan besar pada layanan"
    assert message_fill(root) == INDICATOR_COLORS["major"]
    endpoint = json.loads((site / "badge" / "status.json").read_text(encoding="utf-8"))
    assert endpoint["message"] == "Gangguan besar pada layanan"
    assert endpoint["color"] == INDICATOR_COLORS["major"]


def test_endpoint_documents_follow_the_shields_schema(site: Path) -> None:
    for name in tree_files(site):
        if name.startswith("badge/") and name.endswith(".json"):
            document = json.loads((site / name).read_text(encoding="utf-8"))
            assert set(document) == ENDPOINT_KEYS, name
            assert document["schemaVersion"] == 1
            assert isinstance(document["label"], str)
            assert document["message"]  # shields refuses an empty message
            assert re.fullmatch(r"#[0-9a-f]{6}", document["color"])
            assert document["isError"] is False


@pytest.mark.parametrize(
    "color",
    [*(STATUS_COLORS[s] for s in COMPONENT_STATUSES), *INDICATOR_COLORS.values(), LABEL_COLOR],
)
def test_white_badge_text_is_readable_on_every_colour(color: str) -> None:
    assert contrast_with_white(color) >= 4.5


def test_every_status_and_indicator_has_its_colour() -> None:
    assert set(STATUS_COLORS) == set(COMPONENT_STATUSES)
    assert set(INDICATORS) | {"maintenance"} == set(INDICATOR_COLORS)


def test_badge_width_follows_the_text() -> None:
    def width(badge: Badge) -> int:
        return int(ET.fromstring(badge.svg()).attrib["width"])

    short = width(Badge("OTP", "Normal", "#1a7f37"))
    long = width(Badge("Pendaftaran akun baru", "Normal", "#1a7f37"))
    assert long - short == pytest.approx(
        text_width("Pendaftaran akun baru") - text_width("OTP"), abs=2
    )
    assert text_width("iii") < text_width("mmm")
    root = ET.fromstring(Badge("Masuk", "Gangguan besar", "#cf222e").svg())
    boxes = [float(t.attrib["textLength"]) for t in root.iter(f"{SVG}text")]
    assert boxes[2] >= text_width("Gangguan besar")
    assert int(root.attrib["width"]) == sum(boxes[::2]) + 4 * 6


def test_hostile_names_are_escaped_in_badges(
    store: Store,
    make_settings: MakeSettings,
    add_incident: AddIncident,
    now: datetime,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        title={"id": f"Status {EVIL}", "en": f"Status {EVIL}"},
        components=[{"id": "home", "name": {"id": f"Beranda {EVIL}\x0b", "en": f"Home {EVIL}"}}],
    )
    add_incident(
        store,
        title=(f"Judul {EVIL}", f"Title {EVIL}"),
        status="investigating",
        started_at=now,
        components={"home": "partial_outage"},
        updates=[(now, "investigating", f"Pesan {EVIL}", f"Message {EVIL}")],
    )
    site = publish_site(store, settings, now=now, out_dir=tmp_path / "site")
    for name in ("home", "status"):
        raw = (site / "badge" / f"{name}.svg").read_text(encoding="utf-8")
        assert "<script" not in raw and "\x0b" not in raw
        raw_json = (site / "badge" / f"{name}.json").read_text(encoding="utf-8")
        assert "<" not in raw_json and "&" not in raw_json and "\\u000b" not in raw_json
    root = read_svg(site / "badge" / "home.svg")
    assert root.attrib["aria-label"] == f"Beranda {EVIL}: Gangguan sebagian"
    assert root.findtext(f"{SVG}title") == f"Beranda {EVIL}: Gangguan sebagian"
    endpoint = json.loads((site / "badge" / "home.json").read_text(encoding="utf-8"))
    assert endpoint["label"] == f"Beranda {EVIL}"  # shields draws an SVG from it, too
    page = read_svg(site / "badge" / "status.svg")
    assert page.attrib["aria-label"].startswith(f"Status {EVIL}: ")


def test_a_component_called_status_takes_the_page_badge_with_a_warning(
    store: Store,
    make_settings: MakeSettings,
    now: datetime,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(components=[{"id": "status", "name": "Cek status"}])
    with caplog.at_level(logging.WARNING, logger="monitor.badges"):
        site = publish_site(store, settings, now=now, out_dir=tmp_path / "site")
    assert read_svg(site / "badge" / "status.svg").attrib["aria-label"] == "Cek status: Normal"
    assert "shadows the page badge" in caplog.text
