"""Field types shared by the config models of the engine and of the check kinds.

Durations, secrets, texts per language and HTTP status ranges are parsed here
once, so every model that uses them reports errors the same way.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import core_schema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: The longest duration taken: a hundred years (``--since 100000h`` reaches back all
#: history). Longer ones are mistakes, and dates that far from now overflow the calendar.
MAX_DURATION = timedelta(days=36_500)


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: for messages that quote an input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_duration(value: Any) -> timedelta:
    """Parse ``"500ms"``, ``"30s"``, ``"2m"``, ``"1h"``, ``"1d"`` or a number of seconds.

    Raises ValueError for anything else, including zero, negative, not finite and
    longer than :data:`MAX_DURATION` values.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '30s'")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    else:
        raise ValueError(
            f"invalid duration {shown(value)}: use a number of seconds or a string "
            "with a unit, such as '500ms', '30s', '2m', '1h'"
        )
    if math.isnan(seconds):
        raise ValueError("a duration must be a number, not NaN")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration must be at most {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def parse_duration_or_zero(value: Any) -> timedelta:
    """Like :func:`parse_duration`, but zero (``0``, ``"0s"``) is allowed."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    zero_number = isinstance(value, int | float) and not isinstance(value, bool) and value == 0
    if zero_number or (match is not None and float(match.group(1)) == 0):
        return timedelta(0)
    return parse_duration(value)


#: A duration that may be zero (for example an alert rule's ``for``).
DurationOrZero = Annotated[
    timedelta,
    BeforeValidator(parse_duration_or_zero),
    PlainSerializer(lambda td: f"{td.total_seconds():g}s", return_type=str),
    WithJsonSchema({"type": "string"}),
]


def parse_ratio(value: Any) -> float:
    """Parse a ratio: ``0.2`` or ``"20%"``. Raises ValueError outside 0..1."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            ratio = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"invalid percentage {shown(value)}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ratio = float(value)
    else:
        raise ValueError(
            f"invalid ratio {shown(value)}: use a number such as 0.2 or a string '20%'"
        )
    if not 0 <= ratio <= 1:
        raise ValueError(f"a ratio is between 0 and 1 (or 0% and 100%), not {shown(value)}")
    return ratio


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda td: f"{td.total_seconds():g}s", return_type=str),
    WithJsonSchema({"type": "string"}),
]


class Secret:
    """A value from the environment. Its ``repr`` and ``str`` are masked.

    Call :meth:`reveal` at the single place that hands it to a library.
    """

    __slots__ = ("_value", "template")

    def __init__(self, value: str, *, template: str) -> None:
        self._value = value
        self.template = template

    def reveal(self) -> str:
        return self._value

    @property
    def has_secret(self) -> bool:
        """True when the value came (at least in part) from an environment variable."""
        return bool(_ENV_REF.search(self.template))

    def masked(self) -> str:
        """The configured text with every ``${VAR}`` left unresolved: safe to show."""
        return self.template

    def __repr__(self) -> str:
        return f"Secret({self.template!r})"

    __str__ = masked

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            resolve_secret,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda s: s.masked(), return_schema=core_schema.str_schema()
            ),
            json_schema_input_schema=core_schema.str_schema(),
        )


def resolve_secret(value: Any, info: ValidationInfo) -> Secret:
    """Resolve every ``${VAR}`` in ``value`` from the environment given as context.

    Raises ValueError naming each variable that is not set.
    """
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a string (secrets are written as '${ENV_VAR}')")
    env: Mapping[str, str] = (info.context or {}).get("env", os.environ)
    missing = [name for name in _ENV_REF.findall(value) if name not in env]
    if missing:
        raise ValueError("environment variable " + ", ".join(sorted(set(missing))) + " is not set")
    resolved = _ENV_REF.sub(lambda m: env[m.group(1)], value)
    return Secret(resolved, template=value)


SecretText = Secret


class LocalizedText(BaseModel):
    """A text shown to people, per language. A plain string serves every language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = None
    en: str | None = None

    def get(self, lang: str) -> str:
        """Return the text in ``lang``, falling back to the other language."""
        value = getattr(self, lang, None) or self.id or self.en
        return value or ""

    def has(self, lang: str) -> bool:
        return bool(getattr(self, lang, None))


def _to_localized(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must not be empty")
        return {"id": value, "en": value}
    if isinstance(value, Mapping) and not any(value.get(k) for k in ("id", "en")):
        raise ValueError("give the text in at least one language: { id = '...', en = '...' }")
    return value


Text = Annotated[LocalizedText, BeforeValidator(_to_localized)]


class StatusRanges(BaseModel):
    """Accepted HTTP status codes: ranges such as ``"200-399"`` or single codes."""

    model_config = ConfigDict(frozen=True)

    ranges: tuple[tuple[int, int], ...]

    def accepts(self, code: int) -> bool:
        return any(low <= code <= high for low, high in self.ranges)

    def __str__(self) -> str:
        return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


def _parse_status(value: Any) -> Any:
    if isinstance(value, StatusRanges | Mapping):
        return value
    items = value if isinstance(value, list) else [value]
    ranges: list[tuple[int, int]] = []
    for item in items:
        for part in str(item).split(","):
            low, _, high = part.strip().partition("-")
            try:
                lo, hi = int(low), int(high or low)
            except ValueError:
                raise ValueError(
                    f"invalid status {shown(part.strip())}: use codes or ranges like 200 or '200-399'"
                ) from None
            if not (100 <= lo <= hi <= 599):
                raise ValueError(f"invalid status range {shown(part.strip())}: codes are 100-599")
            ranges.append((lo, hi))
    if not ranges:
        raise ValueError("give at least one status code")
    return {"ranges": ranges}


StatusSpec = Annotated[
    StatusRanges,
    BeforeValidator(_parse_status),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]


def _to_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[tuple[str, ...], BeforeValidator(_to_list)]

_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 10**6,
    "mib": 2**20,
    "gb": 10**9,
    "gib": 2**30,
}


def parse_size(value: Any) -> int:
    """Parse a byte size: a number of bytes or a string such as ``"1MiB"`` or ``"500kb"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
        if size > 0:
            return size
    raise ValueError(f"invalid size {shown(value)}: use bytes or a string such as '1MiB'")


ByteSize = Annotated[int, BeforeValidator(parse_size)]
