"""The incident history: ``history.html`` by month, and ``history.atom`` / ``history.rss``.

* :func:`render_history` writes the history page of one language (same layout as the
  other pages: every incident shown, grouped by the month it started in, newest first);
* :func:`write_feeds` writes the two feeds at the root, in the first configured language.

The feeds follow Atlassian Statuspage's ``history.atom``: one entry per incident (its
updates, newest first, in the content), a stable ``tag:`` id, ``updated`` = the incident's
``updated_at``. They are built with ElementTree, which escapes every text, so a statement
holding ``<script>`` or ``&`` stays text; the HTML in an entry's content is escaped once
as HTML and once more as XML, as the formats require. Links are absolute under
``[site] base_url``, or relative to the feed when it is empty.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from jinja2 import Environment

from monitor.config import Settings
from monitor.i18n import format_duration, format_month, format_time, join_names
from monitor.publish import (
    IncidentView,
    InterfaceText,
    SiteSnapshot,
    _language_prefix,
    _page_context,
    _write,
    status_word,
)

#: The feeds hold the incidents updated most recently, at most this many.
FEED_LIMIT = 50

# Namespaces are declared as plain ``xmlns`` attributes over plain names: ElementTree's
# own handling cannot write a default namespace beside unqualified attributes, and would
# name any other prefix "ns0" unless it were registered process-wide.
_ATOM = "http://www.w3.org/2005/Atom"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
# Characters XML 1.0 cannot hold at all (not even as references).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def month_name(year: int, month: int, lang: str) -> str:
    """``September 2026`` in Indonesian and in English."""
    return format_month(year, month, lang)


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (ElementTree would write them raw)."""
    return _NOT_XML.sub("", text)


# -- history.html ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryMonth:
    """A calendar month of the history (in the site's zone) and its incidents, newest first."""

    year: int
    month: int
    incidents: tuple[IncidentView, ...]

    @property
    def anchor(self) -> str:
        """``2026-09``: the month's fragment id on the page."""
        return f"{self.year:04d}-{self.month:02d}"

    def name(self, lang: str) -> str:
        return month_name(self.year, self.month, lang)


def history_months(
    incidents: Iterable[IncidentView], zone: ZoneInfo, *, until: datetime
) -> tuple[HistoryMonth, ...]:
    """Every month from the oldest incident's start to ``until``, newest first.

    An incident belongs to the month it started in, in ``zone``. Months without an
    incident are kept (empty), so the page can say so; with no incident at all the
    result is ``until``'s month alone.
    """
    by_month: dict[tuple[int, int], list[IncidentView]] = {}
    for incident in sorted(incidents, key=lambda i: (i.started_at, i.id), reverse=True):
        local = incident.started_at.astimezone(zone)
        by_month.setdefault((local.year, local.month), []).append(incident)
    end = until.astimezone(zone)
    last = max([(end.year, end.month), *by_month])
    year, month = min([last, *by_month])
    months = []
    while (year, month) <= last:
        months.append(HistoryMonth(year, month, tuple(by_month.get((year, month), ()))))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tuple(reversed(months))


def render_history(
    env: Environment, snapshot: SiteSnapshot, settings: Settings, out_dir: Path, lang: str
) -> None:
    """Write ``history.html`` of ``lang`` (``<lang>/history.html`` but for the first language)."""
    page = "history.html"
    path = _language_prefix(settings, lang) + page
    context = _page_context(snapshot, settings, lang, path, page)
    months = history_months(snapshot.incidents, settings.site.zone, until=snapshot.generated_at)

    def duration(incident: IncidentView) -> str | None:
        if incident.resolved_at is None:
            return None
        return format_duration(incident.resolved_at - incident.started_at, lang)

    template = env.get_template("site/history.html.j2")
    _write(out_dir / path, template.render(**context, months=months, duration=duration))


# -- history.atom and history.rss -----------------------------------------------------------


@dataclass(frozen=True)
class FeedEntry:
    """One incident as a feed entry, in the feed's language."""

    id: str
    title: str
    link: str
    published: datetime
    updated: datetime
    #: An HTML fragment (statements already escaped as HTML).
    content: str


@dataclass(frozen=True)
class HistoryFeed:
    """What both feeds say: the page, its links, and the entries, most recently updated first."""

    lang: str
    title: str
    #: The page's title, named as the feed's author.
    author: str
    id: str
    #: The history page and the feed files, absolute under ``base_url`` or relative.
    page_link: str
    atom_link: str
    rss_link: str
    #: Whether the links are absolute (a feed's ``self`` link is only written then).
    absolute: bool
    #: Dates are written with this zone's offset.
    zone: ZoneInfo
    updated: datetime
    entries: tuple[FeedEntry, ...]


def write_feeds(snapshot: SiteSnapshot, settings: Settings, out_dir: Path) -> None:
    """Write ``history.atom`` and ``history.rss`` into ``out_dir`` (first language)."""
    feed = history_feed(snapshot, settings)
    _write(out_dir / "history.atom", atom_document(feed))
    _write(out_dir / "history.rss", rss_document(feed))


def history_feed(snapshot: SiteSnapshot, settings: Settings) -> HistoryFeed:
    """The feed of the :data:`FEED_LIMIT` incidents updated last, in the first language."""
    lang = settings.site.languages[0]
    zone = settings.site.zone
    base = settings.site.base_url.strip().rstrip("/")
    host = urlsplit(base).hostname if base else None
    incidents = sorted(snapshot.incidents, key=lambda i: (i.updated_at, i.id), reverse=True)
    entries = tuple(
        FeedEntry(
            id=_entry_id(incident, host, seed=base or snapshot.title.get("id")),
            title=incident.title.get(lang),
            link=_link(base, f"incidents/{incident.id}.html"),
            published=incident.started_at,
            updated=incident.updated_at,
            content=_entry_html(incident, lang, zone),
        )
        for incident in incidents[:FEED_LIMIT]
    )
    return HistoryFeed(
        lang=lang,
        title=f"{snapshot.title.get(lang)} – {InterfaceText(lang).history}",
        author=snapshot.title.get(lang),
        id=_link(base, "history.atom") if base else _urn(snapshot.title.get("id"), "history"),
        page_link=_link(base, "history.html"),
        atom_link=_link(base, "history.atom"),
        rss_link=_link(base, "history.rss"),
        absolute=bool(base),
        zone=zone,
        updated=entries[0].updated if entries else snapshot.generated_at,
        entries=entries,
    )


def _link(base: str, path: str) -> str:
    return f"{base}/{path}" if base else path


def _entry_id(incident: IncidentView, host: str | None, *, seed: str) -> str:
    """A stable id: a ``tag:`` URI under the page's host, dated by the incident's start
    (so a reset database reusing the number is still another entry); without a host, a
    name-based UUID URN."""
    day = incident.started_at.astimezone(UTC).date().isoformat()
    if host:
        return f"tag:{host},{day}:incident/{incident.id}"
    return _urn(seed, f"incident/{incident.id}/{day}")


def _urn(seed: str, name: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"pantau:{seed}:{name}").urn


def _entry_html(incident: IncidentView, lang: str, zone: ZoneInfo) -> str:
    """The incident's updates, newest first, then its components, as escaped HTML."""
    parts = []
    for update in reversed(incident.updates):
        message = html.escape(update.message.get(lang)).replace("\n", "<br>")
        status = html.escape(status_word(update.status, lang))
        parts.append(
            f"<p><small>{html.escape(format_time(update.at, zone, lang))}</small><br>"
            f"<strong>{status}</strong>{' - ' + message if message else ''}</p>"
        )
    if not incident.updates:
        parts.append(
            f"<p><strong>{html.escape(status_word(incident.status, lang, default=''))}</strong></p>"
        )
    if incident.components:
        names = join_names([c.name.get(lang) for c in incident.components], lang)
        parts.append(f"<p>{html.escape(InterfaceText(lang).affected)}: {html.escape(names)}</p>")
    return "".join(parts)


def _element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, {key: xml_text(value) for key, value in attrs.items()})
    if text is not None:
        child.text = xml_text(text)
    return child


def _serialize(root: ET.Element) -> str:
    ET.indent(root)
    return _XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"


def atom_document(feed: HistoryFeed) -> str:
    """``history.atom`` (RFC 4287): dates in RFC 3339, with the site zone's offset."""

    def stamp(moment: datetime) -> str:
        return moment.astimezone(feed.zone).isoformat(timespec="seconds")

    root = ET.Element("feed", {"xmlns": _ATOM, _XML_LANG: feed.lang})
    _element(root, "id", feed.id)
    _element(root, "title", feed.title)
    _element(root, "updated", stamp(feed.updated))
    _element(_element(root, "author"), "name", feed.author)
    _element(root, "link", rel="alternate", type="text/html", href=feed.page_link)
    if feed.absolute:
        _element(root, "link", rel="self", type="application/atom+xml", href=feed.atom_link)
    for entry in feed.entries:
        item = _element(root, "entry")
        _element(item, "id", entry.id)
        _element(item, "title", entry.title)
        _element(item, "link", rel="alternate", type="text/html", href=entry.link)
        _element(item, "published", stamp(entry.published))
        _element(item, "updated", stamp(entry.updated))
        _element(item, "content", entry.content, type="html")
    return _serialize(root)


def rss_document(feed: HistoryFeed) -> str:
    """``history.rss`` (RSS 2.0): dates in RFC 822 (as RFC 2822 writes them)."""

    def stamp(moment: datetime) -> str:
        return format_datetime(moment.astimezone(feed.zone))

    root = ET.Element("rss", {"version": "2.0"})
    channel = _element(root, "channel")
    _element(channel, "title", feed.title)
    _element(channel, "link", feed.page_link)
    _element(channel, "description", feed.title)
    _element(channel, "language", feed.lang)
    _element(channel, "lastBuildDate", stamp(feed.updated))
    if feed.absolute:
        root.set("xmlns:atom", _ATOM)
        _element(channel, "atom:link", href=feed.rss_link, rel="self", type="application/rss+xml")
    for entry in feed.entries:
        item = _element(channel, "item")
        _element(item, "title", entry.title)
        _element(item, "link", entry.link)
        _element(item, "guid", entry.id, isPermaLink="false")
        _element(item, "pubDate", stamp(entry.published))
        _element(item, "description", entry.content)
    return _serialize(root)
