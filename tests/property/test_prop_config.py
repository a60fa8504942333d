"""Config parsing under hostile input: arbitrary TOML-ish trees and a mutated example.

Properties: :func:`parse_settings` and :func:`load_settings` raise nothing but
:class:`ConfigError`; every error has a message and a key path that can be followed
into the input (a missing key is named under its parent, which is in the input).
A bad config makes ``pantau validate`` exit 2 with the key path on stderr.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import subprocess
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prop_support import examples
from pydantic import BaseModel

from monitor.config import ConfigError, Settings, load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
ENV = {"TOKEN": "s3cr3t", "EMPTY": ""}
SPECIAL_PATHS = {"(top level)", "(file)", "(syntax)"}

# --- values ------------------------------------------------------------------------------

#: Strings that are almost right somewhere: durations, ids, zones, secrets, statuses, URLs.
PLAUSIBLE = (
    "30s",
    "500ms",
    "-5s",
    "0",
    "0s",
    "1e999s",
    "99999999999999999999d",
    "nan",
    "inf",
    "20%",
    "150%",
    "login",
    "Login Page",
    "http",
    "flow",
    "tls",
    "GET",
    "http://127.0.0.1/",
    "https://example.id/masuk",
    "200-299",
    "599-100",
    "Asia/Jakarta",
    "Mars/Olympus",
    "../../etc/passwd",
    "zone.tab",
    "${TOKEN}",
    "${UNSET_VARIABLE}",
    "${EMPTY}",
    "127.0.0.1:9464",
    "host:99999",
    "1MiB",
    "id",
    "en",
    "x",
    "file",
    "surge",
    "maintenance",
    "error_rate",
    "latency",
    "consecutive",
    "complaints",
    "",
    " ",
)

scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # nan and infinities included: TOML has them
    st.sampled_from([0, -1, 1e300, 10**30, 2**63, float("nan"), float("inf"), -0.0]),
    st.text(max_size=20),
    st.sampled_from(PLAUSIBLE),
    st.datetimes(),
    st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=7))])),
    st.dates(),
    st.times(),
)
keys = st.one_of(
    st.text(max_size=8), st.sampled_from(["id", "kind", "name", "en", "url", "base_dir"])
)
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)
    ),
    max_leaves=6,
)


def _strategy(annotation: Any, depth: int) -> st.SearchStrategy[Any]:
    """Values for a field of this type: mostly plausible, sometimes junk."""
    if depth > 4:
        return junk
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _strategy(args[0], depth)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_strategy(arg, depth) for arg in args if arg is not type(None)))
    if origin is typing.Literal:
        return st.one_of(st.sampled_from(args), junk)
    if origin is tuple:
        return st.one_of(st.lists(_strategy(args[0], depth + 1), max_size=3), junk)
    if origin is dict:
        return st.one_of(st.dictionaries(keys, _strategy(args[1], depth + 1), max_size=3), junk)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return st.one_of(model_dicts(annotation, depth + 1), junk)
    return junk


def model_dicts(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A table of some of ``model``'s keys (with their aliases), plus stray keys."""
    fields = {
        (info.alias or name): _strategy(info.annotation, depth)
        for name, info in model.model_fields.items()
        if name != "base_dir"
    }
    known = st.fixed_dictionaries({}, optional=fields)
    return st.tuples(known, st.dictionaries(keys, junk, max_size=2)).map(
        lambda pair: {**pair[1], **pair[0]}
    )


# --- key paths ----------------------------------------------------------------------------


def follows_into(path: str, data: Any, *, missing_ok: bool) -> bool:
    """Whether ``path`` (``checks[1](login).steps[0].url``) can be walked through ``data``.

    Keys may hold dots or brackets themselves, so every key of a table that the path
    continues with is tried. With ``missing_ok`` the last key may be absent (it is the
    missing one) as long as its table is there.
    """
    if path == "":
        return True
    if isinstance(data, list):
        match = re.match(r"\[(\d+)\]", path)
        if match is None or int(match.group(1)) >= len(data):
            return False
        item, rest = data[int(match.group(1))], path[match.end() :]
        label = (
            f"({item['id']})"
            if isinstance(item, Mapping) and isinstance(item.get("id"), str)
            else ""
        )
        if label and not rest.startswith(label):
            return False
        return follows_into(rest[len(label) :], item, missing_ok=missing_ok)
    if isinstance(data, Mapping):
        body = path.removeprefix(".")
        for key in data:
            if isinstance(key, str) and body.startswith(key):
                rest = body[len(key) :]
                if rest[:1] in ("", ".", "[") and follows_into(
                    rest, data[key], missing_ok=missing_ok
                ):
                    return True
        return missing_ok and re.fullmatch(r"[A-Za-z_]+", body) is not None
    return False


def assert_refused_well(data: Mapping[str, Any]) -> Settings | None:
    """Parse ``data``: a Settings, or a ConfigError whose every error is well formed."""
    try:
        return parse_settings(data, env=ENV)
    except ConfigError as exc:
        errors = exc.errors
    assert errors, "a ConfigError without errors"
    for path, message in errors:
        assert isinstance(path, str) and path, errors
        assert isinstance(message, str) and message.strip(), errors
        assert len(message) < 400, message
        missing = message == "required key is missing"
        assert path in SPECIAL_PATHS or follows_into(path, data, missing_ok=missing), (
            path,
            message,
        )
    return None


# --- properties -----------------------------------------------------------------------


@examples(120)
@given(model_dicts(Settings))
def test_arbitrary_trees_are_parsed_or_refused_with_key_paths(data: dict[str, Any]) -> None:
    assert_refused_well(data)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a parsed TOML tree (tables, array items, values)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


EXAMPLE_PATHS = _paths(EXAMPLE)
mutations = st.lists(
    st.tuples(st.sampled_from(EXAMPLE_PATHS), st.sampled_from(["drop", "replace"]), junk),
    min_size=1,
    max_size=4,
)


def _mutate(tree: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> None:
    node: Any = tree
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return  # an earlier mutation removed it
    last = path[-1]
    if (isinstance(node, dict) and last in node) or (
        isinstance(node, list) and isinstance(last, int) and last < len(node)
    ):
        if action == "drop":
            del node[last]
        else:
            node[last] = value


def test_the_example_config_is_valid() -> None:
    assert assert_refused_well(EXAMPLE) is not None


@examples(150)
@given(mutations)
def test_the_mutated_example_is_parsed_or_refused_with_key_paths(
    changes: list[tuple[tuple[Any, ...], str, Any]],
) -> None:
    tree = copy.deepcopy(EXAMPLE)
    for path, action, value in changes:
        _mutate(tree, path, action, value)
    assert_refused_well(tree)


EXAMPLE_TEXT = (ROOT / "config.toml").read_bytes()
#: Lines tomllib fails on with something else than TOMLDecodeError.
PATHOLOGICAL_TOML = (
    b"\nhuge = " + b"9" * 5000 + b"\n",  # ValueError: over 4,300 digits
    b"\ndeep = " + b"[" * 3000 + b"]" * 3000 + b"\n",  # RecursionError
    b"\ndeeper = " + b"{a = " * 3000 + b"1" + b"}" * 3000 + b"\n",
    b"\nwhen = 1979-05-27T07:32:00+25:00\n",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\xff\xfe",
)


@examples(100)
@given(
    st.integers(min_value=0, max_value=len(EXAMPLE_TEXT)),
    st.integers(min_value=0, max_value=40),
    st.one_of(
        st.binary(max_size=20),
        st.text(max_size=20).map(str.encode),
        st.sampled_from(PATHOLOGICAL_TOML),
    ),
)
def test_a_damaged_file_is_loaded_or_refused(
    tmp_path_factory: pytest.TempPathFactory, at: int, cut: int, insert: bytes
) -> None:
    path = tmp_path_factory.mktemp("config") / "config.toml"
    path.write_bytes(EXAMPLE_TEXT[:at] + insert + EXAMPLE_TEXT[at + cut :])
    try:
        load_settings(path, env=ENV)
    except ConfigError as exc:
        errors = exc.errors
    else:
        return
    assert errors and all(p and m for p, m in errors)


def test_base_dir_is_not_a_key_of_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"base_dir": "/etc"})
    assert info.value.errors == [("base_dir", "unknown key")]


@pytest.mark.parametrize(
    "value",
    [1e300, float("inf"), float("-inf"), float("nan"), 10**30, "99999999999999999999d", -1],
)
def test_an_absurd_duration_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"site": {"publish_interval": value}})
    ((path, message),) = info.value.errors
    assert path == "site.publish_interval" and "duration" in message


# --- the command ------------------------------------------------------------------------


def test_pantau_validate_exits_2_naming_each_bad_key(tmp_path: Path) -> None:
    absurd = EXAMPLE_TEXT.decode().replace('publish_interval = "30s"', "publish_interval = 1e300")
    absurd = absurd.replace('id = "home-page"', 'id = "<Home Page>"', 1)
    (tmp_path / "absurd.toml").write_text(absurd, encoding="utf-8")
    (tmp_path / "deep.toml").write_bytes(EXAMPLE_TEXT + PATHOLOGICAL_TOML[1])
    pantau = Path(sys.executable).with_name("pantau")

    def validate(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(pantau), "-c", str(tmp_path / name), "validate"],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        absurd_run, deep_run = pool.map(validate, ["absurd.toml", "deep.toml"])
    for proc in (absurd_run, deep_run):
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
    assert "site.publish_interval: a duration must be at most" in absurd_run.stderr
    assert "checks[0](<Home Page>).id: " in absurd_run.stderr
    assert "(syntax): not valid TOML: arrays or tables nested too deeply" in deep_run.stderr
