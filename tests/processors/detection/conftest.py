"""Fixtures for detection tests: compile a watchlist from inline YAML, build articles."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from processors.detection import load_watchlists

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "detection"
SEED_WATCHLISTS = REPO / "seeds" / "watchlists"


@dataclass(frozen=True)
class Doc:
    """The smallest article detect() accepts."""

    text: str = ""
    title: str = ""
    lang: str | None = None
    summary: str = ""


@pytest.fixture
def compile_pack(tmp_path):
    """compile_pack(yaml) -> Watchlist, from one pack written to a temporary folder."""
    def compile_(yaml_text: str):
        folder = tmp_path / "packs"
        folder.mkdir(exist_ok=True)
        (folder / "pack.yaml").write_text(textwrap.dedent(yaml_text), encoding="utf-8")
        return load_watchlists(folder)
    return compile_


@pytest.fixture(scope="session")
def seed_watchlist():
    return load_watchlists(SEED_WATCHLISTS)
