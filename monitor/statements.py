"""Bilingual statement templates for incidents (jinja2, plain text).

A template is a pair of files ``NAME.id.txt`` and ``NAME.en.txt``: the shipped
set lives in ``templates/statements``; a team adds its own in the folder named
by ``[incidents] templates_dir``, where a file of the same name wins.
Rendered text is plain: every page and feed escapes it where it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateError

from monitor.resources import templates_dir

LANGUAGES = ("id", "en")


class StatementError(Exception):
    """A template is unknown or cannot be rendered."""


@dataclass(frozen=True, slots=True)
class Statement:
    """A text in both languages."""

    id: str
    en: str

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.id


class StatementLibrary:
    """Finds and renders statement templates."""

    def __init__(self, *, extra_dir: Path | None = None) -> None:
        self._dirs = [d for d in (extra_dir, templates_dir() / "statements") if d is not None]
        loaders = [FileSystemLoader(str(d)) for d in self._dirs]
        self._env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=False,  # noqa: S701 - plain text; escaped where shown
            undefined=StrictUndefined,
            keep_trailing_newline=False,
        )

    def names(self) -> list[str]:
        """Names of every template available in both languages (``title`` excluded)."""
        found: set[str] = set()
        for folder in self._dirs:
            if not folder.is_dir():
                continue
            for path in folder.glob("*.id.txt"):
                name = path.name.removesuffix(".id.txt")
                if any((d / f"{name}.en.txt").exists() for d in self._dirs):
                    found.add(name)
        return sorted(found - {"title"})

    def render(self, name: str, variables: dict[str, Any]) -> Statement:
        """Render template ``name`` in both languages. Raises StatementError."""
        texts = {}
        for lang in LANGUAGES:
            values = variables.get(lang, variables)
            try:
                template = self._env.get_template(f"{name}.{lang}.txt")
                texts[lang] = template.render(**values).strip()
            except TemplateError as exc:
                raise StatementError(f"template {name!r} ({lang}): {exc}") from exc
        return Statement(id=texts["id"], en=texts["en"])
