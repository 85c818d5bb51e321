"""Fixtures: a second sandbox on Xandikos, the fidelity corpus and comparison helpers.

The ncmcp test kit (sandbox, sandbox_user, make_host, http_host) is enabled for the whole repository
by ``-p ncmcp.testing`` in the root pyproject.toml (a plugin kept in its own repository would put
``pytest_plugins = ["ncmcp.testing"]`` in its top-level conftest.py instead).
"""

from __future__ import annotations

import pathlib
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from ncmcp.testing.sandbox import SandboxProcess
from ncmcp_contacts import vcard

CORPUS = pathlib.Path(__file__).parent / "corpus"
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.vcf"))


@pytest.fixture(scope="session")
def xandikos_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(dav_backend="xandikos") as process:
        yield process


@pytest.fixture(params=["radicale", "xandikos"])
def dav_sandbox(request: pytest.FixtureRequest) -> SandboxProcess:
    """Integration tests run once per CardDAV backend."""
    if request.param == "radicale":
        return request.getfixturevalue("sandbox")
    return request.getfixturevalue("xandikos_sandbox")


def corpus_text(name: str) -> str:
    return (CORPUS / name).read_bytes().decode("utf-8")


def line_key(line: Any) -> tuple[Any, ...]:
    """A content line as data: group, name, parameters (values split, order-free) and the raw value."""
    params = tuple(sorted((key, tuple(sorted(vcard.param_values(line, key)))) for key in line.params))
    return ((line.group or "").lower(), line.name, params, line.value)


def card_lines(text: str) -> Counter[tuple[Any, ...]]:
    return Counter(line_key(line) for line in vcard.parse(text).lines)


def diff(before: str, after: str) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    """(lines only in ``before``, lines only in ``after``), field for field."""
    old, new = card_lines(before), card_lines(after)
    return old - new, new - old


@pytest.fixture
def kit() -> SimpleNamespace:
    return SimpleNamespace(corpus_text=corpus_text, card_lines=card_lines, diff=diff, files=CORPUS_FILES)
