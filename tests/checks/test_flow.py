"""Multi-step flows: a real login with CSRF and cookies, extraction, secrets, timeouts.

The user's case runs against a real site on 127.0.0.1 (``flow_site.py``); precise
transport faults in a later step are injected with pytest-httpx.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import pytest
from flow_site import EMAIL, FlowSite
from pytest_httpx import HTTPXMock

from checks.base import ErrorClass, ProbeContext, ProbeResult
from checks.flow import FlowCheck, FlowCheckSettings, parse_json_path, resolve_json_path
from monitor.clock import SystemClock
from monitor.config import ConfigError, load_settings, parse_settings
from monitor.runtime import make_client

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2 S3cret!&="  # spaces and symbols: its url-encoded form differs
ENV = {"PANTAU_TEST_PASSWORD": PASSWORD}
MOCK = "http://127.0.0.1:9"  # never contacted: pytest-httpx answers in its place


def flow_settings(steps: list[dict[str, Any]], **fields: Any) -> FlowCheckSettings:
    env = fields.pop("env", ENV)
    data = {"id": "login-flow", "component": "login", "kind": "flow", "steps": steps, **fields}
    return FlowCheckSettings.model_validate(data, context={"env": env})


async def run_flow(ctx: ProbeContext, steps: list[dict[str, Any]], **fields: Any) -> ProbeResult:
    return await FlowCheck(flow_settings(steps, **fields)).run(ctx)


def login_steps(
    site: FlowSite, *, password: str = "${PANTAU_TEST_PASSWORD}"
) -> list[dict[str, Any]]:
    return [
        {
            "name": "login-page",
            "url": site.url("/login"),
            "body_contains": "Masuk",
            "extract": {"csrf": {"css": "input[name=csrf]", "attr": "value"}},
        },
        {
            "name": "submit-login",
            "method": "POST",
            "url": site.url("/login"),
            "form": {"csrf": "{{ csrf }}", "email": EMAIL, "password": password},
            "body_contains": "Selamat datang",
        },
    ]


@pytest.fixture
def site() -> Iterator[FlowSite]:
    served = FlowSite(password=PASSWORD)
    yield served
    served.close()


@pytest.fixture
async def runtime_client() -> AsyncIterator[httpx.AsyncClient]:
    """The client ``pantau run`` shares between probes: it refuses every cookie."""
    async with make_client(parse_settings({})) as shared:
        yield shared


@pytest.fixture
def runtime_ctx(runtime_client: httpx.AsyncClient) -> ProbeContext:
    return ProbeContext(client=runtime_client, clock=SystemClock())


@pytest.fixture(params=["runtime-client", "cookie-keeping-client"])
def any_ctx(
    request: pytest.FixtureRequest, runtime_ctx: ProbeContext, ctx: ProbeContext
) -> ProbeContext:
    """The runtime's client, and a default httpx client that would keep cookies."""
    return runtime_ctx if request.param == "runtime-client" else ctx


# --- the login flow on a real site ---------------------------------------------------------


async def test_login_flow_passes_with_csrf_and_cookies_carried_across_steps_and_redirects(
    site: FlowSite, any_ctx: ProbeContext
) -> None:
    dashboard = {"name": "dashboard", "url": site.url("/dashboard"), "body_contains": "Selamat"}

    result = await run_flow(any_ctx, [*login_steps(site), dashboard])

    assert result.ok, result.detail
    assert (result.error, result.step, result.status_code) == (None, None, 200)
    assert [(s.name, s.ok, s.status_code) for s in result.steps] == [
        ("login-page", True, 200),
        ("submit-login", True, 200),
        ("dashboard", True, 200),
    ]
    (post,) = site.seen("/login")[1:]
    assert post.method == "POST" and post.cookie is not None and "sid=" in post.cookie
    # "auth" was set on the 302 hop and must reach the hop's target and the later step.
    assert all(
        "sid=" in (r.cookie or "") and "auth=" in (r.cookie or "") for r in site.seen("/dashboard")
    )
    assert len(site.seen("/dashboard")) == 2


async def test_each_step_reports_its_latency_and_the_result_the_total(
    site: FlowSite, runtime_ctx: ProbeContext
) -> None:
    result = await run_flow(runtime_ctx, login_steps(site))

    assert result.ok, result.detail
    latencies = [s.latency_ms for s in result.steps]
    assert all(latency is not None and latency > 0 for latency in latencies)
    assert result.latency_ms is not None
    assert result.latency_ms >= sum(latency or 0 for latency in latencies)
    assert [s["latency_ms"] is not None for s in result.as_json()["steps"]] == [True, True]


async def test_dashboard_without_the_login_cookies_fails(
    site: FlowSite, runtime_ctx: ProbeContext
) -> None:
    """The site really needs the cookies: the passing login above proves they persist."""
    steps = [{"name": "dashboard", "url": site.url("/dashboard"), "body_contains": "Selamat"}]

    result = await run_flow(runtime_ctx, steps)

    assert (result.ok, result.error, result.step) == (False, ErrorClass.ASSERTION, "dashboard")
    assert site.seen("/dashboard")[0].cookie is None


async def test_a_second_run_starts_without_the_cookies_of_the_first(
    site: FlowSite, any_ctx: ProbeContext
) -> None:
    check = FlowCheck(flow_settings(login_steps(site)))

    first = await check.run(any_ctx)
    second = await check.run(any_ctx)

    assert first.ok and second.ok, (first.detail, second.detail)
    pages = [r for r in site.seen("/login") if r.method == "GET"]
    assert [page.cookie for page in pages] == [None, None]
    posts = [r for r in site.seen("/login") if r.method == "POST"]
    assert posts[0].cookie != posts[1].cookie  # each run used its own session


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        pytest.param({}, ErrorClass.HTTP_STATUS, id="401-is-http-status"),
        pytest.param({"expect_status": "200-401"}, ErrorClass.ASSERTION, id="page-text-assertion"),
    ],
)
async def test_wrong_password_fails_the_submit_step(
    site: FlowSite, runtime_ctx: ProbeContext, fields: dict[str, Any], error: ErrorClass
) -> None:
    steps = login_steps(site, password="not-the-password")
    steps[1].update(fields)

    result = await run_flow(runtime_ctx, steps)

    assert (result.ok, result.error, result.step) == (False, error, "submit-login")
    assert result.detail.startswith("submit-login: ")
    assert result.status_code == 401
    assert [(s.name, s.ok, s.error) for s in result.steps] == [
        ("login-page", True, None),
        ("submit-login", False, error),
    ]


# --- extraction ------------------------------------------------------------------------------


def _signup_steps(site: FlowSite) -> list[dict[str, Any]]:
    return [
        {
            "name": "signup-page",
            "url": site.url("/signup"),
            "extract": {"token": {"css": "meta[name=csrf-token]", "attr": "content"}},
        },
        {
            "name": "availability",
            "url": site.url("/api/availability?phone=081234567891"),
            "headers": {"X-CSRF-Token": "{{ token }}"},
        },
    ]


EXTRACTIONS = [
    pytest.param(
        lambda site: [{"name": "page", "url": site.url("/login")}],
        {"css": "input[name=csrf]", "attr": "value"},
        lambda site, value: value in site.sessions.values(),
        id="css-attr",
    ),
    pytest.param(
        lambda site: [{"name": "page", "url": site.url("/otp")}],
        {"css": "h1"},
        lambda site, value: value == "Masukkan kode OTP",
        id="css-text",
    ),
    pytest.param(
        lambda site: [{"name": "page", "url": site.url("/login")}],
        {"regex": 'name="csrf" value="([^"]+)"'},
        lambda site, value: value in site.sessions.values(),
        id="regex",
    ),
    pytest.param(
        _signup_steps,
        {"json": "$.data.phone"},
        lambda site, value: value == "081234567891",
        id="json-string",
    ),
    pytest.param(
        _signup_steps,
        {"json": "$.data.available"},
        lambda site, value: value == "true",
        id="json-boolean",
    ),
    pytest.param(
        _signup_steps,
        {"json": "$.checks[0]"},
        lambda site, value: json.loads(value) == {"field": "phone", "ok": True},
        id="json-object-as-json",
    ),
    pytest.param(
        lambda site: [{"name": "page", "url": site.url("/api/token")}],
        {"header": "x-probe-token"},
        lambda site, value: value in site.api_tokens,
        id="header",
    ),
]


@pytest.mark.parametrize(("make_steps", "rule", "expected"), EXTRACTIONS)
async def test_extracted_value_reaches_a_later_step(
    site: FlowSite,
    runtime_ctx: ProbeContext,
    make_steps: Callable[[FlowSite], list[dict[str, Any]]],
    rule: dict[str, str],
    expected: Callable[[FlowSite, str], bool],
) -> None:
    steps = make_steps(site)
    steps[-1]["extract"] = {**steps[-1].get("extract", {}), "got": rule}
    steps.append({"name": "use", "url": site.url("/otp?got={{ got }}")})

    result = await run_flow(runtime_ctx, steps)

    assert result.ok, result.detail
    (used,) = site.seen("/otp")[-1:]
    value = parse_qs(urlsplit(used.path).query)["got"][0]
    assert expected(site, value), value


async def test_header_token_is_used_as_a_bearer_header(
    site: FlowSite, runtime_ctx: ProbeContext
) -> None:
    steps = [
        {
            "name": "token",
            "url": site.url("/api/token"),
            "extract": {"t": {"header": "X-Probe-Token"}},
        },
        {
            "name": "me",
            "url": site.url("/api/me"),
            "headers": {"Authorization": "Bearer {{ t }}"},
            "body_contains": "Peserta Uji",
        },
    ]

    result = await run_flow(runtime_ctx, steps)

    assert result.ok, result.detail


@pytest.mark.parametrize(
    ("path", "rule", "why"),
    [
        pytest.param(
            "/otp", {"css": "input[name=csrf]", "attr": "value"}, "no element", id="css-no-match"
        ),
        pytest.param(
            "/otp", {"css": "input[name=code]", "attr": "value"}, "no 'value'", id="css-no-attr"
        ),
        pytest.param("/otp", {"regex": "csrf=(\\w+)"}, "no match", id="regex-no-match"),
        pytest.param("/otp", {"json": "$.token"}, "not JSON", id="json-not-json"),
        pytest.param("/api/token", {"json": "$.data.token"}, "no such path", id="json-no-path"),
        pytest.param("/otp", {"header": "X-Probe-Token"}, "no such header", id="header-missing"),
    ],
)
async def test_failed_extraction_fails_the_step_with_assertion_naming_the_variable(
    site: FlowSite, runtime_ctx: ProbeContext, path: str, rule: dict[str, str], why: str
) -> None:
    steps = [
        {"name": "first", "url": site.url("/otp")},
        {"name": "take", "url": site.url(path), "extract": {"csrf": rule}},
        {"name": "never", "url": site.url("/login?c={{ csrf }}")},
    ]

    result = await run_flow(runtime_ctx, steps)

    assert (result.ok, result.error, result.step) == (False, ErrorClass.ASSERTION, "take")
    assert result.detail.startswith("take: could not extract 'csrf'")
    assert why in result.detail
    assert [s.name for s in result.steps] == ["first", "take"]
    assert result.steps[1].status_code == 200
    assert not site.seen("/login")


# --- the whole-flow timeout ---------------------------------------------------------------


async def test_whole_flow_timeout_names_the_running_step(
    site: FlowSite, runtime_ctx: ProbeContext
) -> None:
    steps = [
        {"name": "otp-page", "url": site.url("/otp")},
        {"name": "wait", "url": site.url("/slow")},
        {"name": "never", "url": site.url("/login")},
    ]
    start = time.monotonic()

    result = await run_flow(runtime_ctx, steps, timeout="400ms")

    assert time.monotonic() - start < 2.0
    assert (result.ok, result.error, result.step) == (False, ErrorClass.TIMEOUT, "wait")
    assert result.detail.startswith("wait: timed out")
    assert [(s.name, s.ok, s.error) for s in result.steps] == [
        ("otp-page", True, None),
        ("wait", False, ErrorClass.TIMEOUT),
    ]
    assert result.steps[1].latency_ms is not None and result.steps[1].latency_ms > 0
    assert not site.seen("/login")


async def test_a_slow_step_makes_the_flow_degraded_not_down(
    site: FlowSite, runtime_ctx: ProbeContext
) -> None:
    steps = [
        {"name": "otp-page", "url": site.url("/otp")},
        {"name": "queue", "url": site.url("/slow"), "max_latency": "10ms"},
        {"name": "otp-again", "url": site.url("/otp"), "degraded_if_body_contains": "OTP"},
    ]

    site.slow_seconds = 0.2
    result = await run_flow(runtime_ctx, steps, timeout="10s")

    assert (result.ok, result.degraded, result.error) == (True, True, ErrorClass.TOO_SLOW)
    assert result.step == "queue"  # the first step that degraded
    assert result.detail.startswith("queue: slow: took")
    assert [s.ok for s in result.steps] == [True, True, True]


# --- secrets --------------------------------------------------------------------------------


def _shown(result: ProbeResult, settings: FlowCheckSettings) -> list[str]:
    return [
        result.detail,
        repr(result),
        json.dumps(result.as_json()),
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(settings.steps[1].form),
    ]


@pytest.mark.parametrize(
    ("csrf", "status"),
    [
        pytest.param("{{ csrf }}", 401, id="wrong-credentials-echoed-in-401"),
        pytest.param("forged", 400, id="bad-csrf-echoed-in-400"),
    ],
)
async def test_credentials_never_appear_in_results_even_when_the_server_echoes_them(
    runtime_ctx: ProbeContext, caplog: pytest.LogCaptureFixture, csrf: str, status: int
) -> None:
    site = FlowSite(password="the-real-one")  # the probe's password is wrong here
    try:
        steps = login_steps(site)
        steps[1]["form"]["csrf"] = csrf
        settings = flow_settings(steps)
        with caplog.at_level(logging.DEBUG):
            result = await FlowCheck(settings).run(runtime_ctx)
        posted = site.seen("/login")[-1].body.decode()
    finally:
        site.close()

    assert (result.error, result.status_code, result.step) == (
        ErrorClass.HTTP_STATUS,
        status,
        "submit-login",
    )
    assert quote_plus(PASSWORD) in posted  # it was sent, and the page echoed it back
    for text in [*_shown(result, settings), caplog.text]:
        for form in (PASSWORD, quote_plus(PASSWORD), "S3cret"):
            assert form not in text
    assert "${PANTAU_TEST_PASSWORD}" in repr(settings)


async def test_a_transport_error_quoting_a_secret_is_masked(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(url=f"{MOCK}/login", html="<input name=csrf value=abc>")
    httpx_mock.add_exception(
        httpx.ConnectError(f"refused while sending password={quote_plus(PASSWORD)}"),
        url=f"{MOCK}/login",
        method="POST",
    )
    steps = [
        {"name": "page", "url": f"{MOCK}/login"},
        {
            "name": "submit",
            "method": "POST",
            "url": f"{MOCK}/login",
            "form": {"password": "${PANTAU_TEST_PASSWORD}"},
        },
    ]

    result = await run_flow(ctx, steps)

    assert (result.error, result.step) == (ErrorClass.CONNECT, "submit")
    assert "password=***" in result.detail
    assert "S3cret" not in json.dumps(result.as_json())


def test_missing_secret_is_a_config_error_naming_the_variable_not_a_value() -> None:
    steps = [PAGE, {"name": "submit", "url": PAGE["url"], "form": {"pw": "${NOPE_PASSWORD}"}}]

    errors = _errors(steps)

    path = "checks[0](login-flow).steps[1].form.pw"
    assert (path, "environment variable NOPE_PASSWORD is not set") in errors


# --- transport faults in a later step, injected ---------------------------------------------


@pytest.mark.parametrize(
    ("make_exc", "expected"),
    [
        pytest.param(
            lambda: httpx.ConnectError("[Errno 111] Connection refused"),
            ErrorClass.CONNECT,
            id="connect",
        ),
        pytest.param(lambda: httpx.ReadTimeout("timed out"), ErrorClass.TIMEOUT, id="read-timeout"),
        pytest.param(
            lambda: httpx.ConnectTimeout("timed out"), ErrorClass.TIMEOUT, id="connect-timeout"
        ),
    ],
)
async def test_transport_fault_in_step_two_is_classified_and_names_the_step(
    httpx_mock: HTTPXMock,
    ctx: ProbeContext,
    make_exc: Callable[[], BaseException],
    expected: ErrorClass,
) -> None:
    httpx_mock.add_response(url=f"{MOCK}/login", html="<input name=csrf value=abc123>")
    httpx_mock.add_exception(make_exc(), url=f"{MOCK}/login", method="POST")
    steps = [
        {
            "name": "page",
            "url": f"{MOCK}/login",
            "extract": {"csrf": {"css": "input", "attr": "value"}},
        },
        {
            "name": "submit",
            "method": "POST",
            "url": f"{MOCK}/login",
            "form": {"csrf": "{{ csrf }}"},
        },
    ]

    result = await run_flow(ctx, steps)

    assert (result.ok, result.error, result.step, result.status_code) == (
        False,
        expected,
        "submit",
        None,
    )
    assert result.detail.startswith("submit: ")
    assert [(s.name, s.ok, s.error) for s in result.steps] == [
        ("page", True, None),
        ("submit", False, expected),
    ]
    posted = httpx_mock.get_requests(method="POST")[0]
    assert parse_qs(posted.content.decode()) == {"csrf": ["abc123"]}


async def test_dns_failure_in_step_two_is_dns(httpx_mock: HTTPXMock, ctx: ProbeContext) -> None:
    error = httpx.ConnectError("could not connect")
    error.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    httpx_mock.add_response(url=f"{MOCK}/a")
    httpx_mock.add_exception(error, url=f"{MOCK}/b")

    result = await run_flow(
        ctx, [{"name": "a", "url": f"{MOCK}/a"}, {"name": "b", "url": f"{MOCK}/b"}]
    )

    assert (result.error, result.step) == (ErrorClass.DNS, "b")


# --- request building -------------------------------------------------------------------------


async def test_json_body_is_sent_with_variables_and_secrets_filled_in(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(url=f"{MOCK}/token", headers={"X-Token": "tok-1"})
    httpx_mock.add_response(url=f"{MOCK}/check", method="POST", json={"ok": True})
    steps = [
        {"name": "token", "url": f"{MOCK}/token", "extract": {"tok": {"header": "X-Token"}}},
        {
            "name": "check",
            "method": "POST",
            "url": f"{MOCK}/check",
            "json": {
                "token": "{{ tok }}",
                "pw": "${PANTAU_TEST_PASSWORD}",
                "n": 1,
                "xs": [True, None],
            },
        },
    ]
    settings = flow_settings(steps)

    result = await FlowCheck(settings).run(ctx)

    assert result.ok, result.detail
    sent = httpx_mock.get_requests(url=f"{MOCK}/check")[0]
    assert json.loads(sent.content) == {
        "token": "tok-1",
        "pw": PASSWORD,
        "n": 1,
        "xs": [True, None],
    }
    assert sent.headers["content-type"] == "application/json"
    assert PASSWORD not in repr(settings) and PASSWORD not in settings.model_dump_json()


async def test_variables_are_percent_encoded_in_urls(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(url=f"{MOCK}/a", json={"q": "a b&c/d"})
    httpx_mock.add_response(url=f"{MOCK}/b?q=a%20b%26c%2Fd")
    steps = [
        {"name": "a", "url": f"{MOCK}/a", "extract": {"q": {"json": "$.q"}}},
        {"name": "b", "url": f"{MOCK}/b?q={{{{ q }}}}"},
    ]

    result = await run_flow(ctx, steps)

    assert result.ok, result.detail


async def test_a_variable_that_breaks_a_header_fails_with_assertion(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(url=f"{MOCK}/a", json={"q": "line\r\nX-Injected: 1"})
    steps = [
        {"name": "a", "url": f"{MOCK}/a", "extract": {"q": {"json": "$.q"}}},
        {"name": "b", "url": f"{MOCK}/b", "headers": {"X-Q": "{{ q }}"}},
    ]

    result = await run_flow(ctx, steps)

    assert (result.error, result.step) == (ErrorClass.ASSERTION, "b")
    assert "'X-Q'" in result.detail and "Injected" not in result.detail


async def test_a_secret_holding_braces_is_sent_as_is(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(url=f"{MOCK}/a")
    steps = [{"name": "a", "url": f"{MOCK}/a", "headers": {"X-Key": "${PANTAU_TEST_KEY}"}}]

    result = await run_flow(ctx, steps, env={"PANTAU_TEST_KEY": "{{ not_a_variable }}"})

    assert result.ok, result.detail
    assert httpx_mock.get_requests()[0].headers["X-Key"] == "{{ not_a_variable }}"


async def test_cookies_set_on_a_redirect_not_followed_reach_the_next_step(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(
        url=f"{MOCK}/login",
        status_code=302,
        headers={"Location": "/x", "Set-Cookie": "sid=s1; Path=/"},
    )
    httpx_mock.add_response(url=f"{MOCK}/next")
    steps = [
        {"name": "login", "url": f"{MOCK}/login", "follow_redirects": False, "expect_status": 302},
        {"name": "next", "url": f"{MOCK}/next"},
    ]

    result = await run_flow(ctx, steps)

    assert result.ok, result.detail
    assert httpx_mock.get_requests(url=f"{MOCK}/next")[0].headers["Cookie"] == "sid=s1"


# --- configuration ----------------------------------------------------------------------------


def _config(steps: list[dict[str, Any]]) -> dict[str, Any]:
    check = {"id": "login-flow", "component": "login", "kind": "flow", "steps": steps}
    return {"components": [{"id": "login", "name": "Masuk"}], "checks": [check]}


def _errors(steps: list[dict[str, Any]]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_settings(_config(steps), env=ENV)
    return info.value.errors


PAGE = {"name": "page", "url": "http://127.0.0.1/login"}


@pytest.mark.parametrize(
    ("second", "path", "message"),
    [
        pytest.param(
            {"name": "submit", "url": "http://127.0.0.1/login", "form": {"csrf": "{{ csrf }}"}},
            "checks[0](login-flow).steps[1].form.csrf",
            "{{ csrf }} is not extracted by an earlier step",
            id="form",
        ),
        pytest.param(
            {"name": "submit", "url": "http://127.0.0.1/x?t={{ t }}"},
            "checks[0](login-flow).steps[1].url",
            "{{ t }} is not extracted",
            id="url",
        ),
        pytest.param(
            {"name": "submit", "url": "http://127.0.0.1/x", "headers": {"X-T": "Bearer {{t}}"}},
            "checks[0](login-flow).steps[1].headers.X-T",
            "{{ t }} is not extracted",
            id="header",
        ),
        pytest.param(
            {"name": "submit", "url": "http://127.0.0.1/x", "json": {"a": [{"b": "{{ t }}"}]}},
            "checks[0](login-flow).steps[1].json",
            "{{ t }} at $.a[0].b is not extracted",
            id="json-leaf",
        ),
        pytest.param(
            {
                "name": "submit",
                "url": "http://127.0.0.1/x?t={{ t }}",
                "extract": {"t": {"regex": "(t)"}},
            },
            "checks[0](login-flow).steps[1].url",
            "only by this or a later one",
            id="extracted-by-the-same-step",
        ),
    ],
)
def test_undefined_variable_is_a_config_error_with_its_key_path(
    second: dict[str, Any], path: str, message: str
) -> None:
    errors = _errors([PAGE, second])

    assert any(p == path and message in m for p, m in errors), errors


@pytest.mark.parametrize(
    ("step", "path", "message"),
    [
        pytest.param(
            {"extract": {"v": {"regex": "(a)(b)"}}},
            "steps[0].extract.v",
            "exactly one group",
            id="regex-groups",
        ),
        pytest.param(
            {"extract": {"v": {"regex": "("}}},
            "steps[0].extract.v",
            "invalid regex",
            id="regex-syntax",
        ),
        pytest.param(
            {"extract": {"v": {"json": "data.x"}}},
            "steps[0].extract.v",
            "must start with '$'",
            id="json-path-root",
        ),
        pytest.param(
            {"extract": {"v": {"json": "$.a[*]"}}},
            "steps[0].extract.v",
            "cannot read",
            id="json-path-wildcard",
        ),
        pytest.param(
            {"extract": {"v": {"css": "input["}}},
            "steps[0].extract.v",
            "invalid CSS selector",
            id="css-syntax",
        ),
        pytest.param(
            {"extract": {"v": {"css": "a", "regex": "(a)"}}},
            "steps[0].extract.v",
            "exactly one of",
            id="two-sources",
        ),
        pytest.param(
            {"extract": {"v": {"header": "X", "attr": "a"}}},
            "steps[0].extract.v",
            "attr goes with css",
            id="attr-without-css",
        ),
        pytest.param(
            {"extract": {"v": {"jsonpath": "$.a"}}},
            "steps[0].extract.v.jsonpath",
            "unknown key",
            id="unknown-rule",
        ),
        pytest.param(
            {"extract": {"1v": {"header": "X"}}},
            "steps[0].extract",
            "variable name '1v'",
            id="bad-variable-name",
        ),
        pytest.param(
            {"url": "http://x/${PANTAU_TEST_PASSWORD}"},
            "steps[0].url",
            "may not hold ${ENV}",
            id="secret-in-url",
        ),
        pytest.param({"url": "ftp://x/"}, "steps[0].url", "http:// or https://", id="not-http"),
        pytest.param(
            {"form": {"a": "{{ 1x }}"}},
            "steps[0].form.a",
            "starts no variable",
            id="malformed-reference",
        ),
        pytest.param(
            {"form": {"a": "b"}, "json": {"a": "b"}}, "steps[0]", "not both", id="form-and-json"
        ),
    ],
)
def test_invalid_step_is_a_config_error_with_its_key_path(
    step: dict[str, Any], path: str, message: str
) -> None:
    errors = _errors([{**PAGE, **step}])

    assert any(p == f"checks[0](login-flow).{path}" and message in m for p, m in errors), errors


def test_duplicate_step_names_are_refused() -> None:
    errors = _errors([PAGE, PAGE])

    assert ("checks[0](login-flow).steps[1].name", "duplicate step name 'page'") in errors


def test_example_config_has_flow_checks_and_needs_no_environment() -> None:
    settings = load_settings(ROOT / "config.toml", env={})

    flows = [check for check in settings.checks if check.kind == "flow"]
    assert flows, "config.toml shows no flow check"
    assert all(isinstance(check, FlowCheckSettings) for check in flows)


# --- JSON paths --------------------------------------------------------------------------------

DOCUMENT = {"data": {"items": [{"id": 7}, {"id": 8}], "a.b": "dotted"}, "list": ["x"]}


@pytest.mark.parametrize(
    ("path", "found", "value"),
    [
        pytest.param("$", True, DOCUMENT, id="root"),
        pytest.param("$.data.items[0].id", True, 7, id="nested-index"),
        pytest.param("$.data.items[-1].id", True, 8, id="negative-index"),
        pytest.param("$.data['a.b']", True, "dotted", id="quoted-key"),
        pytest.param('$["list"][0]', True, "x", id="double-quoted-key"),
        pytest.param("$.data.items[2]", False, None, id="index-out-of-range"),
        pytest.param("$.data.missing", False, None, id="missing-key"),
        pytest.param("$.list.x", False, None, id="key-into-list"),
        pytest.param("$.data[0]", False, None, id="index-into-object"),
    ],
)
def test_json_path_subset_resolves(path: str, found: bool, value: Any) -> None:
    assert resolve_json_path(DOCUMENT, path) == (found, value)


@pytest.mark.parametrize("path", ["data", "$.", "$..a", "$.a[*]", "$.a[?(@.x)]", "$.a[1:2]"])
def test_json_path_outside_the_subset_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="JSON path"):
        parse_json_path(path)
