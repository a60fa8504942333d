"""Multi-step flows (``kind = "flow"``): log in, start a signup, reach the OTP page.

A flow is an ordered list of steps. Each step is one request (redirects followed by
hand, as in :func:`checks.http.fetch`), the expectations of an http check over its
response (:func:`checks.http.assess`), then ``extract``: variables taken from the
response and used by later steps as ``{{ name }}`` in urls, header values and body
values. Cookies live in a jar of one run: carried from step to step and across
redirect hops, never from one run to the next (the shared client keeps none).

Secrets (``${ENV}``) may appear in header and body values. They are resolved when the
config is loaded, sent only in requests, and masked in every detail a result carries;
details never quote response bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote, quote_plus

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema
from selectolax.lexbor import LexborHTMLParser, SelectolaxError

from checks.base import ID_PATTERN, CheckSettings, ErrorClass, ProbeContext, ProbeResult, StepResult
from checks.http import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_BODY,
    Fetched,
    ProbeFailure,
    Progress,
    assess,
    check_header,
    classify_exception,
    degradation,
    describe_phase,
    fetch,
    mask_secrets,
)
from monitor.fields import ByteSize, Duration, Secret, StatusRanges, StatusSpec, StrList

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VARIABLE_NAME = re.compile(rf"^{_NAME}$")
#: ``${ENV}`` (a secret, resolved at load) or ``{{ name }}`` (a variable, filled in at run).
_REFERENCE = re.compile(rf"\$\{{(?P<env>{_NAME})\}}|\{{\{{\s*(?P<var>{_NAME})\s*\}}\}}")
_HTTP_URL = re.compile(r"^https?://\S+$")
_JSON_PATH_PART = re.compile(r"\.([^.\[\]\s]+)|\[(-?\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
#: Extracted values this long or longer are masked in details too (session tokens,
#: CSRF tokens); shorter ones ("true", "1") would only garble the detail.
_MASK_EXTRACTED_FROM = 8
MAX_STEPS = 20

# --- texts with secrets and variables ----------------------------------------------------


class FlowText(Secret):
    """A text of a flow step: ``${ENV}`` resolved at load, ``{{ name }}`` at run time.

    A :class:`~monitor.fields.Secret` (masked ``repr``; :meth:`reveal` gives the text with
    the environment's values and the variable references as written). :meth:`render`
    fills in variables in the configured text only, so neither a secret nor an extracted
    value is ever read as a reference itself.
    """

    __slots__ = ("_parts",)

    def __init__(self, parts: tuple[tuple[str, str], ...], *, template: str) -> None:
        super().__init__("".join(_show(kind, text) for kind, text in parts), template=template)
        self._parts = parts

    @property
    def variables(self) -> tuple[str, ...]:
        """Names of the variables referenced, in order of appearance."""
        return tuple(text for kind, text in self._parts if kind == "var")

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The values that came from the environment (to mask wherever text is shown)."""
        return tuple(text for kind, text in self._parts if kind == "env")

    def render(
        self, values: Mapping[str, str], *, encode: Callable[[str], str] | None = None
    ) -> str:
        """The text to send, each ``{{ name }}`` replaced by ``values[name]`` (encoded with
        ``encode`` when given). Raises KeyError for a variable missing from ``values``."""
        out = []
        for kind, text in self._parts:
            if kind == "var":
                out.append(encode(values[text]) if encode else values[text])
            else:
                out.append(text)
        return "".join(out)

    def __repr__(self) -> str:
        return f"FlowText({self.template!r})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            parse_flow_text,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda text: text.masked(), return_schema=core_schema.str_schema()
            ),
            json_schema_input_schema=core_schema.str_schema(),
        )


def _show(kind: str, text: str) -> str:
    return "{{ " + text + " }}" if kind == "var" else text


def parse_flow_text(value: Any, info: ValidationInfo) -> FlowText:
    """Split ``value`` into literal text, ``${ENV}`` values and ``{{ name }}`` references.

    The environment comes from the validation context, as for every secret. Raises
    ValueError naming each unset variable, or for a ``{{`` that starts no valid reference.
    """
    if isinstance(value, FlowText):
        return value
    if not isinstance(value, str):
        raise ValueError(
            "expected a string (secrets are written as '${ENV_VAR}', variables as '{{ name }}')"
        )
    env: Mapping[str, str] = (info.context or {}).get("env", os.environ)
    missing = sorted(
        {m["env"] for m in _REFERENCE.finditer(value) if m["env"] and m["env"] not in env}
    )
    if missing:
        raise ValueError("environment variable " + ", ".join(missing) + " is not set")
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _REFERENCE.finditer(value):
        parts.append(("text", value[position : match.start()]))
        parts.append(("env", env[match["env"]]) if match["env"] else ("var", match["var"]))
        position = match.end()
    parts.append(("text", value[position:]))
    if any("{{" in text for kind, text in parts if kind == "text"):
        raise ValueError("'{{' starts no variable: write {{ name }} (letters, digits, _)")
    return FlowText(tuple((kind, text) for kind, text in parts if text), template=value)


def _url_without_secrets(value: Any) -> Any:
    if isinstance(value, str) and "${" in value:
        raise ValueError(
            "a url may not hold ${ENV} secrets (urls end up in logs): send them in headers or the body"
        )
    return value


def _http_url(value: FlowText) -> FlowText:
    skeleton = value.render(dict.fromkeys(value.variables, "x"))
    if not _HTTP_URL.match(skeleton):
        raise ValueError("must be an http:// or https:// URL")
    return value


#: A step's url: ``{{ name }}`` allowed (filled in percent-encoded), ``${ENV}`` not.
FlowUrl = Annotated[FlowText, BeforeValidator(_url_without_secrets), AfterValidator(_http_url)]


# --- JSON bodies ---------------------------------------------------------------------------


def _parse_json_body(value: Any, info: ValidationInfo, path: str = "$") -> Any:
    """A JSON value with each string leaf parsed as a :class:`FlowText`."""
    if isinstance(value, str | FlowText):
        try:
            return parse_flow_text(value, info)
        except ValueError as exc:
            raise ValueError(f"at {path}: {exc}") from None
    if isinstance(value, Mapping):
        return {str(k): _parse_json_body(v, info, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_parse_json_body(v, info, f"{path}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ValueError(f"at {path}: not a JSON value ({type(value).__name__})")


def _json_leaves(value: Any, path: str = "$") -> Iterator[tuple[str, FlowText]]:
    if isinstance(value, FlowText):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _json_leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_leaves(item, f"{path}[{i}]")


def _map_json(value: Any, leaf: Callable[[FlowText], Any]) -> Any:
    if isinstance(value, FlowText):
        return leaf(value)
    if isinstance(value, dict):
        return {key: _map_json(item, leaf) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_json(item, leaf) for item in value]
    return value


#: A JSON body (any JSON value) whose string leaves may hold ``${ENV}`` and ``{{ name }}``.
JsonBody = Annotated[
    Any,
    PlainValidator(_parse_json_body),
    PlainSerializer(lambda body: _map_json(body, FlowText.masked)),
]


# --- JSON paths ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def parse_json_path(path: str) -> tuple[str | int, ...]:
    """Parse the JSONPath subset ``$.a.b[0].c`` (also ``$['a.b']``) into keys and indexes.

    Raises ValueError for anything else (no wildcards, filters or slices).
    """
    if not path.startswith("$"):
        raise ValueError(f"JSON path {path!r} must start with '$', as in $.data.token")
    keys: list[str | int] = []
    position = 1
    while position < len(path):
        match = _JSON_PATH_PART.match(path, position)
        if match is None:
            raise ValueError(
                f"JSON path {path!r}: cannot read from position {position}; "
                "use keys and indexes only, as in $.data.items[0].id"
            )
        key, index, quoted1, quoted2 = match.groups()
        keys.append(
            int(index)
            if index is not None
            else next(k for k in (key, quoted1, quoted2) if k is not None)
        )
        position = match.end()
    return tuple(keys)


def resolve_json_path(document: Any, path: str) -> tuple[bool, Any]:
    """Return ``(True, value)`` at ``path`` in ``document``, or ``(False, None)`` when absent."""
    node = document
    for key in parse_json_path(path):
        if not _has(node, key):
            return False, None
        node = node[key]
    return True, node


def _has(node: Any, key: str | int) -> bool:
    if isinstance(key, int):
        return isinstance(node, list) and -len(node) <= key < len(node)
    return isinstance(node, dict) and key in node


# --- configuration -------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Extract(_Frozen):
    """One variable taken from a step's response: exactly one of ``regex``, ``json``,
    ``header`` or ``css`` (with ``attr``, else the element's text)."""

    #: A regular expression with exactly one group, searched in the body; the group's text.
    regex: str | None = None
    #: A JSON path such as ``$.data.token`` into a JSON body; strings as is, others as JSON.
    json_path: str | None = Field(default=None, alias="json")
    #: A response header of the final response (after redirects).
    header: str | None = None
    #: A CSS selector; the first matching element of an HTML body.
    css: str | None = None
    #: With ``css``: the attribute to take (for example ``value`` or ``content``).
    attr: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Extract:
        given = [key for key in ("regex", "json_path", "header", "css") if getattr(self, key)]
        if len(given) != 1:
            raise ValueError("give exactly one of regex, json, header or css")
        if self.attr is not None and self.css is None:
            raise ValueError("attr goes with css only")
        if self.regex is not None:
            _check_regex(self.regex)
        if self.json_path is not None:
            parse_json_path(self.json_path)
        if self.header is not None:
            check_header(self.header, "")
        if self.css is not None:
            _check_selector(self.css)
        return self

    def describe(self) -> str:
        """How the value is taken, for details (config text, never a value)."""
        if self.regex is not None:
            return f"regex {self.regex!r}"
        if self.json_path is not None:
            return f"json {self.json_path!r}"
        if self.header is not None:
            return f"header {self.header!r}"
        return f"css {self.css!r}" + (f" attr {self.attr!r}" if self.attr else "")


def _check_regex(pattern: str) -> None:
    try:
        groups = re.compile(pattern).groups
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None
    if groups != 1:
        raise ValueError(f"a regex must have exactly one group (this one has {groups})")


def _check_selector(selector: str) -> None:
    try:
        LexborHTMLParser("<p></p>").css(selector)
    except SelectolaxError:
        raise ValueError(f"invalid CSS selector {selector!r}") from None


class FlowStep(_Frozen):
    """``[[checks.steps]]``: one request of a flow and what its response must show."""

    #: Names the step in results (``step`` of a failure) and in details.
    name: str = Field(pattern=ID_PATTERN)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    #: http(s) URL; ``{{ name }}`` is filled in percent-encoded; no ``${ENV}`` here.
    url: FlowUrl
    #: Request headers; values may hold ``${ENV}`` secrets and ``{{ name }}`` variables.
    headers: dict[str, FlowText] = Field(default_factory=dict)
    #: A form body (``application/x-www-form-urlencoded``): field = value, values as headers.
    form: dict[str, FlowText] | None = None
    #: A JSON body: any JSON value; its string leaves may hold ``${ENV}`` and ``{{ name }}``.
    json_body: JsonBody = Field(default=None, alias="json")
    #: Follow redirects (up to ``max_redirects``, to http(s) URLs only); cookies set on each
    #: hop are kept.
    follow_redirects: bool = True
    max_redirects: int = Field(default=10, ge=0, le=50)
    #: Bytes of (decompressed) body read at most; beyond fails with ``too_large``.
    max_body_bytes: ByteSize = DEFAULT_MAX_BODY
    #: Accepted status codes of the step's final response.
    expect_status: StatusSpec = StatusRanges(ranges=((200, 399),))
    #: Texts that must all appear in the body.
    body_contains: StrList = ()
    #: Texts none of which may appear in the body.
    body_not_contains: StrList = ()
    #: This step slower than this makes the flow *degraded* (``too_slow``), not down.
    max_latency: Duration | None = None
    #: Texts of a waiting-room or queue page: the step works, but users wait (degraded).
    degraded_if_body_contains: StrList = ()
    #: Variables taken from the response for later steps: ``name = { css = "...", attr = "..." }``.
    extract: dict[str, Extract] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, value: dict[str, FlowText]) -> dict[str, FlowText]:
        for name, header in value.items():
            check_header(name, header.reveal())
        return value

    @field_validator("extract")
    @classmethod
    def _variable_names(cls, value: dict[str, Extract]) -> dict[str, Extract]:
        for name in value:
            if not _VARIABLE_NAME.match(name):
                raise ValueError(f"variable name {name!r}: use letters, digits and _")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> FlowStep:
        if self.form is not None and self.json_body is not None:
            raise ValueError("give a form or a json body, not both")
        return self

    def texts(self) -> Iterator[tuple[tuple[str | int, ...], str, FlowText]]:
        """Every configured text: (key path below the step, where in it, text)."""
        yield ("url",), "", self.url
        for name, value in self.headers.items():
            yield ("headers", name), "", value
        for name, value in (self.form or {}).items():
            yield ("form", name), "", value
        for path, value in _json_leaves(self.json_body):
            yield ("json",), f" at {path}", value


class FlowCheckSettings(CheckSettings):
    """``[[checks]]`` of kind ``flow``. ``timeout`` bounds the whole flow, every step."""

    kind: Literal["flow"] = "flow"
    #: The steps, run in order; the flow stops at the first failing step.
    steps: tuple[FlowStep, ...] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("steps")
    @classmethod
    def _variables_defined_before_use(cls, steps: tuple[FlowStep, ...]) -> tuple[FlowStep, ...]:
        """Each step's names are unique and each ``{{ name }}`` is extracted by an earlier
        step; errors carry their key path (``steps[1].form.csrf``)."""
        errors: list[InitErrorDetails] = []
        names: set[str] = set()
        defined: set[str] = set()
        anywhere = {variable for step in steps for variable in step.extract}
        for i, step in enumerate(steps):
            if step.name in names:
                errors.append(_error((i, "name"), "duplicate step name '{name}'", name=step.name))
            names.add(step.name)
            for loc, where, text in step.texts():
                for variable in text.variables:
                    if variable not in defined:
                        late = variable in anywhere
                        errors.append(_undefined((i, *loc), where, variable, text, late=late))
            defined.update(step.extract)
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return steps

    def secret_values(self) -> frozenset[str]:
        """Every value from the environment in any step."""
        return frozenset(
            value
            for step in self.steps
            for _, _, text in step.texts()
            for value in text.secret_values
        )


def _error(loc: tuple[str | int, ...], message: str, **context: Any) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("flow", message, context), loc=loc, input=context
    )


def _undefined(
    loc: tuple[str | int, ...], where: str, variable: str, text: FlowText, *, late: bool
) -> InitErrorDetails:
    hint = " (only by this or a later one: steps run in order)" if late else ""
    return _error(
        loc,
        "{reference}{where} is not extracted by an earlier step" + hint,
        reference="{{ " + variable + " }}",
        where=where,
        template=text.masked(),
    )


# --- running -------------------------------------------------------------------------------


class _Response:
    """A step's response, parsed for extraction: JSON lazily, HTML beforehand (see
    :func:`parse_html`), each at most once."""

    def __init__(self, fetched: Fetched, html: LexborHTMLParser | None = None) -> None:
        self.fetched = fetched
        self.html = html
        self._json: tuple[bool, Any] | None = None

    def json(self) -> tuple[bool, Any]:
        if self._json is None:
            try:
                self._json = True, json.loads(self.fetched.text)
            except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeply
                self._json = False, None
        return self._json


async def parse_html(text: str, *, done: Callable[[], None]) -> LexborHTMLParser:
    """Parse ``text`` in a thread of its own and return the parsed document.

    lexbor parses without the GIL, and some markup costs it quadratic time (20,000
    nested ``<div>``, or as many ``<option>`` in a ``<select>``: seconds; a 1 MB page of
    them: minutes). On the event loop, one such page would stall every probe; here only
    the waiting flow times out (cancel the wait to give up). The thread cannot be
    stopped: it is a daemon, so that it never holds up the process's exit, its result
    is dropped once nobody waits, and ``done`` is called when it ends, however it ends.
    Raises what the parser raises.
    """
    loop = asyncio.get_running_loop()
    parsed: asyncio.Future[LexborHTMLParser] = loop.create_future()

    def settle(outcome: LexborHTMLParser | Exception) -> None:
        if parsed.done():  # the wait was given up
            return
        if isinstance(outcome, Exception):
            parsed.set_exception(outcome)
        else:
            parsed.set_result(outcome)

    def work() -> None:
        outcome: LexborHTMLParser | Exception
        try:
            outcome = LexborHTMLParser(text)
        except Exception as exc:
            outcome = exc
        finally:
            done()
        with contextlib.suppress(RuntimeError):  # the loop closed while we parsed
            loop.call_soon_threadsafe(settle, outcome)

    try:
        threading.Thread(target=work, name="pantau-parse-html", daemon=True).start()
    except BaseException:
        done()
        raise
    return await parsed


def extract_value(rule: Extract, response: _Response) -> tuple[str | None, str]:
    """Take one value from ``response``: ``(value, "")`` or ``(None, why not)``."""
    if rule.regex is not None:
        match = re.search(rule.regex, response.fetched.text)
        value = match.group(1) if match else None
        return value, "" if value is not None else "no match"
    if rule.json_path is not None:
        return _from_json(rule.json_path, response)
    if rule.header is not None:
        value = response.fetched.headers.get(rule.header)
        return value, "" if value is not None else "no such header"
    return _from_html(rule.css or "", rule.attr, response)


def _from_json(path: str, response: _Response) -> tuple[str | None, str]:
    parsed, document = response.json()
    if not parsed:
        return None, "the body is not JSON"
    found, value = resolve_json_path(document, path)
    if not found:
        return None, "no such path"
    if value is None:
        return None, "the value is null"
    if isinstance(value, str):
        return value, ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False), ""


def _from_html(selector: str, attr: str | None, response: _Response) -> tuple[str | None, str]:
    if response.html is None:
        return None, "the body was not parsed as HTML"
    node = response.html.css_first(selector)
    if node is None:
        return None, "no element matches"
    if attr is None:
        return " ".join((node.text(deep=True) or "").split()), ""
    value = node.attributes.get(attr)
    return value, "" if value is not None else f"the element has no {attr!r} attribute"


Failure = tuple[ErrorClass, str]


@dataclass(slots=True)
class _Run:
    """The state of one run of a flow: its own cookie jar, variables and step outcomes."""

    deadline: float
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)
    values: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    current: str | None = None
    step_started: float = 0.0
    #: How far the running step's request got (names the phase of a timeout).
    progress: Progress = field(default_factory=Progress)
    #: The whole flow's timeout, held off by ``progress`` during a TLS handshake.
    deadline_scope: asyncio.Timeout | None = None
    status_code: int | None = None
    #: The first step that passed but slowly or into a waiting room, and why.
    degraded: tuple[str, Failure] | None = None


class FlowCheck:
    """Run the steps of a flow in order, one cookie jar per run."""

    config_model: ClassVar[type[CheckSettings]] = FlowCheckSettings

    def __init__(self, settings: FlowCheckSettings) -> None:
        self._settings = settings
        self._secrets = _spellings(settings.secret_values())
        # Held while a page of this check is parsed: a parse that outlives its run (see
        # parse_html) makes the next runs fail fast instead of piling up threads.
        self._parser_free = threading.Lock()

    @property
    def settings(self) -> FlowCheckSettings:
        return self._settings

    async def run(self, ctx: ProbeContext) -> ProbeResult:
        """Run the flow once and return a classified result. Never raises (only cancellation).

        ``step`` names the failing step, ``steps`` holds each executed step's outcome, and
        ``latency_ms`` is the whole flow's time.
        """
        started_at = ctx.clock.now()
        start = ctx.clock.monotonic()
        budget = self._settings.timeout.total_seconds()
        run = _Run(deadline=start + budget)
        failure: Failure | None
        try:
            async with asyncio.timeout(budget) as run.deadline_scope:
                failure = await self._run_steps(ctx, run)
        except TimeoutError:
            failure = self._timed_out(ctx, run)
        except Exception as exc:  # a bug of ours must still become a result
            failure = self._close_step(ctx, run, classify_exception(exc, secrets=self._masked(run)))
        latency_ms = (ctx.clock.monotonic() - start) * 1000.0
        degraded = run.degraded if failure is None else None
        return ProbeResult(
            check_id=self._settings.id,
            component_id=self._settings.component,
            started_at=started_at,
            ok=failure is None,
            latency_ms=latency_ms,
            error=failure[0] if failure else degraded[1][0] if degraded else None,
            detail=self._detail(run, failure, degraded),
            status_code=run.status_code,
            step=run.current if failure else degraded[0] if degraded else None,
            region=ctx.region,
            steps=tuple(run.steps),
            degraded=degraded is not None,
        )

    async def _run_steps(self, ctx: ProbeContext, run: _Run) -> Failure | None:
        for step in self._settings.steps:
            run.current, run.step_started = step.name, ctx.clock.monotonic()
            failure = await self._run_step(ctx, run, step)
            if failure is not None:
                return failure
        return None

    async def _run_step(self, ctx: ProbeContext, run: _Run, step: FlowStep) -> Failure | None:
        """One request, its expectations, then its extractions; the outcome is appended."""
        run.progress = Progress(run.deadline_scope)
        try:
            fetched = await fetch(
                ctx.client,
                self._build_request(ctx, run, step),
                follow_redirects=step.follow_redirects,
                max_redirects=step.max_redirects,
                max_body_bytes=step.max_body_bytes,
                monotonic=ctx.clock.monotonic,
                secret_headers=[name for name, value in step.headers.items() if value.has_secret],
                cookies=run.cookies,
                progress=run.progress,
            )
        except ProbeFailure as exc:
            run.status_code = exc.status_code
            return self._close_step(ctx, run, (exc.error, exc.detail))
        except Exception as exc:
            run.status_code = None
            phase = run.progress.phase
            return self._close_step(
                ctx, run, classify_exception(exc, secrets=self._masked(run), phase=phase)
            )
        run.status_code = fetched.status_code
        failure = assess(step, fetched) or await self._extract(run, step, fetched)
        if failure is None and run.degraded is None and (slow := degradation(step, fetched)):
            run.degraded = (step.name, slow)
        run.steps.append(
            StepResult(
                name=step.name,
                ok=failure is None,
                latency_ms=fetched.latency_ms,
                status_code=fetched.status_code,
                error=failure[0] if failure else None,
            )
        )
        return failure

    def _build_request(self, ctx: ProbeContext, run: _Run, step: FlowStep) -> httpx.Request:
        """The step's request with variables filled in and secrets revealed.

        Raises ProbeFailure (``assertion``) when a filled-in header could not be sent.
        """
        headers = httpx.Headers({"Accept-Encoding": ACCEPT_ENCODING})
        for name, value in step.headers.items():
            text = value.render(run.values)
            try:
                check_header(name, text)
            except ValueError:
                raise ProbeFailure(
                    ErrorClass.ASSERTION,
                    f"header {name!r} is not sendable once its variables are filled in",
                ) from None
            headers[name] = text
        form = {k: v.render(run.values) for k, v in step.form.items()} if step.form else None
        body = _map_json(step.json_body, lambda text: text.render(run.values))
        request = ctx.client.build_request(
            step.method,
            step.url.render(run.values, encode=functools.partial(quote, safe="")),
            headers=headers,
            data=form,
            json=body,
            timeout=max(run.deadline - ctx.clock.monotonic(), 0.001),
        )
        if not any(name.lower() == "cookie" for name in step.headers):
            # Cookies come from this run's jar only, even from a client that keeps some.
            request.headers.pop("Cookie", None)
        return request

    async def _extract(self, run: _Run, step: FlowStep, fetched: Fetched) -> Failure | None:
        response = _Response(fetched)
        if any(rule.css is not None for rule in step.extract.values()):
            if not self._parser_free.acquire(blocking=False):
                return ErrorClass.TIMEOUT, "a page of an earlier run is still being parsed"
            run.progress.phase = "parse"
            response.html = await parse_html(fetched.text, done=self._parser_free.release)
        for name, rule in step.extract.items():
            value, why = extract_value(rule, response)
            if value is None:
                return (
                    ErrorClass.ASSERTION,
                    f"could not extract {name!r} by {rule.describe()}: {why}",
                )
            run.values[name] = value
        return None

    def _close_step(self, ctx: ProbeContext, run: _Run, failure: Failure) -> Failure:
        """Record the running step as failed with ``failure`` (no response came)."""
        if run.current is not None and not any(s.name == run.current for s in run.steps):
            latency_ms = (ctx.clock.monotonic() - run.step_started) * 1000.0
            run.steps.append(
                StepResult(
                    name=run.current,
                    ok=False,
                    latency_ms=latency_ms,
                    status_code=run.status_code,
                    error=failure[0],
                )
            )
        return failure

    def _timed_out(self, ctx: ProbeContext, run: _Run) -> Failure:
        budget = _seconds(self._settings.timeout)
        phase = describe_phase(run.progress.phase)
        run.status_code = None
        detail = f"timed out (the whole flow may take {budget} at most" + (
            f"; {phase})" if phase else ")"
        )
        return self._close_step(ctx, run, (ErrorClass.TIMEOUT, detail))

    def _masked(self, run: _Run) -> tuple[str, ...]:
        extracted = {v for v in run.values.values() if len(v) >= _MASK_EXTRACTED_FROM}
        return self._secrets + _spellings(extracted)

    def _detail(
        self, run: _Run, failure: Failure | None, degraded: tuple[str, Failure] | None = None
    ) -> str:
        if failure is None and degraded is not None:
            return mask_secrets(f"{degraded[0]}: {degraded[1][1]}", self._masked(run))
        if failure is None:
            count = len(run.steps)
            return f"{count} step{'s' if count != 1 else ''} passed, last status {run.status_code}"
        return mask_secrets(f"{run.current}: {failure[1]}", self._masked(run))


def _spellings(values: frozenset[str] | set[str]) -> tuple[str, ...]:
    """Each value as is and as it appears url-encoded or inside a JSON string."""
    forms: set[str] = set()
    for value in values:
        if value:
            forms.update((value, quote_plus(value), quote(value, safe=""), json.dumps(value)[1:-1]))
    return tuple(sorted(forms, key=len, reverse=True))


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"
