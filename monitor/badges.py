"""Status badges: ``badge/<component>.svg`` and ``badge/<component>.json``.

The SVG is a flat, shields.io-style badge ("Masuk | Normal") to embed with ``<img>``; the
JSON is shields.io's endpoint schema, so ``https://img.shields.io/endpoint?url=...``
renders the same badge in any of its styles. ``badge/status.*`` is the whole page (the
banner's wording). Both speak the first configured language. The status is always in the
text; the colour only repeats it, and white text keeps a contrast of at least 4.5:1 on
every colour used.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from monitor.config import Settings
from monitor.feeds import xml_text
from monitor.publish import SiteSnapshot, _dump_json, _write, status_word

log = logging.getLogger(__name__)

#: The name of the whole page's badge in ``badge/`` (a component with this id shadows it).
PAGE_BADGE = "status"

#: Message colours per component status; white text on each has a contrast of 4.5:1 or more.
STATUS_COLORS = {
    "operational": "#1a7f37",
    "under_maintenance": "#0969da",
    "degraded_performance": "#9a6700",
    "partial_outage": "#bc4c00",
    "major_outage": "#cf222e",
}
#: Message colours of the page badge per banner key (an indicator, or ``maintenance``).
INDICATOR_COLORS = {
    "none": "#1a7f37",
    "maintenance": "#0969da",
    "minor": "#9a6700",
    "major": "#cf222e",
    "critical": "#a40e26",
}
UNKNOWN_COLOR = "#6e7781"
LABEL_COLOR = "#555555"

# Declared as a plain attribute (see monitor.feeds for why).
_SVG = "http://www.w3.org/2000/svg"
_HEIGHT = 20
_PADDING = 6  # on each side of a text
# Rough advance widths in Verdana 11px, which shields.io badges use; ``textLength``
# then fits the text to its box whatever font the viewer has.
_NARROW = frozenset("ijl.,:;!|'")
_SEMI = frozenset('frtI()[]{} -/\\"')
_BROAD = frozenset("mwMW%@")


def text_width(text: str) -> float:
    """The approximate width of ``text`` in Verdana at 11px, in pixels."""
    return sum(_char_width(char) for char in text)


def _char_width(char: str) -> float:
    if char in _NARROW:
        return 3.1
    if char in _SEMI:
        return 4.3
    if char in _BROAD or unicodedata.east_asian_width(char) in ("W", "F"):
        return 10.0
    if unicodedata.combining(char):
        return 0.0
    return 7.5 if char.isupper() else 6.8


@dataclass(frozen=True)
class Badge:
    """A label (left, grey) and a message (right, coloured), with the message's colour."""

    label: str
    message: str
    color: str

    def endpoint(self) -> dict[str, Any]:
        """The shields.io endpoint document (``schemaVersion`` 1), its texts as in the SVG."""
        return {
            "schemaVersion": 1,
            "label": xml_text(self.label),
            "message": xml_text(self.message),
            "color": self.color,
            "isError": False,
        }

    def svg(self) -> str:
        """The badge as a standalone SVG document, its texts escaped."""
        label, message = xml_text(self.label), xml_text(self.message)
        label_width = math.ceil(text_width(label)) + 2 * _PADDING
        message_width = math.ceil(text_width(message)) + 2 * _PADDING
        width = label_width + message_width
        spoken = f"{label}: {message}"
        root = ET.Element(
            "svg",
            {
                "xmlns": _SVG,
                "width": str(width),
                "height": str(_HEIGHT),
                "viewBox": f"0 0 {width} {_HEIGHT}",
                "role": "img",
                "aria-label": spoken,
            },
        )
        _svg(root, "title").text = spoken
        _flat_background(root, width, label_width, self.color)
        texts = _svg(
            root,
            "g",
            {
                "fill": "#fff",
                "text-anchor": "middle",
                "font-family": "Verdana,Geneva,DejaVu Sans,sans-serif",
                "font-size": "11",
                "text-rendering": "geometricPrecision",
            },
        )
        _centred_text(texts, label, x=label_width / 2, width=label_width)
        _centred_text(texts, message, x=label_width + message_width / 2, width=message_width)
        ET.indent(root)
        return ET.tostring(root, encoding="unicode") + "\n"


def _svg(parent: ET.Element, tag: str, attrs: dict[str, str] | None = None) -> ET.Element:
    return ET.SubElement(parent, tag, attrs or {})


def _flat_background(root: ET.Element, width: int, label_width: int, color: str) -> None:
    """Shields' flat style: two rectangles, rounded corners and a faint top-down shade."""
    shade = _svg(root, "linearGradient", {"id": "shade", "x2": "0", "y2": "100%"})
    _svg(shade, "stop", {"offset": "0", "stop-color": "#bbb", "stop-opacity": ".1"})
    _svg(shade, "stop", {"offset": "1", "stop-opacity": ".1"})
    corners = _svg(root, "clipPath", {"id": "round"})
    _svg(corners, "rect", {"width": str(width), "height": str(_HEIGHT), "rx": "3", "fill": "#fff"})
    group = _svg(root, "g", {"clip-path": "url(#round)"})
    _svg(group, "rect", {"width": str(label_width), "height": str(_HEIGHT), "fill": LABEL_COLOR})
    _svg(
        group,
        "rect",
        {
            "x": str(label_width),
            "width": str(width - label_width),
            "height": str(_HEIGHT),
            "fill": color,
        },
    )
    _svg(group, "rect", {"width": str(width), "height": str(_HEIGHT), "fill": "url(#shade)"})


def _centred_text(parent: ET.Element, text: str, *, x: float, width: int) -> None:
    """The text and its shadow (hidden from assistive technology), fitted to its box."""
    fitted = f"{width - 2 * _PADDING}"
    common = {"x": f"{x:g}", "textLength": fitted, "lengthAdjust": "spacingAndGlyphs"}
    shadow = {**common, "y": "15", "fill": "#010101", "fill-opacity": ".3", "aria-hidden": "true"}
    _svg(parent, "text", shadow).text = text
    _svg(parent, "text", {**common, "y": "14"}).text = text


# -- the page's badges ----------------------------------------------------------------------


def page_badges(snapshot: SiteSnapshot, settings: Settings) -> dict[str, Badge]:
    """The badges by file stem: :data:`PAGE_BADGE` for the page, then one per component.

    A component whose id is :data:`PAGE_BADGE` takes that name (``badge/<component>.svg``
    is the published contract); the page's badge is then left out, with a warning.
    """
    lang = settings.site.languages[0]
    overall = snapshot.overall
    badges = {
        PAGE_BADGE: Badge(
            label=snapshot.title.get(lang),
            message=overall.description.get(lang),
            color=INDICATOR_COLORS.get(overall.key, UNKNOWN_COLOR),
        )
    }
    for component in snapshot.components:
        if component.id == PAGE_BADGE:
            log.warning(
                "component id=%s shadows the page badge badge/%s.svg", PAGE_BADGE, PAGE_BADGE
            )
        badges[component.id] = Badge(
            label=component.name.get(lang),
            message=status_word(component.status, lang),
            color=STATUS_COLORS.get(component.status, UNKNOWN_COLOR),
        )
    return badges


def write_badges(snapshot: SiteSnapshot, settings: Settings, out_dir: Path) -> None:
    """Write ``badge/<name>.svg`` and ``badge/<name>.json`` for every badge of the page."""
    for name, badge in page_badges(snapshot, settings).items():
        _write(out_dir / "badge" / f"{name}.svg", badge.svg())
        _write(out_dir / "badge" / f"{name}.json", _dump_json(badge.endpoint()))
