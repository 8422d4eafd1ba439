"""`newswatch check` lists every problem at once (one mistake never hides another), and a spelling
written twice in one term is reported. Pure: no broker."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from newswatch.config import SEEDS_DIR, collect_problems
from newswatch.errors import ConfigError
from processors.detection import load_watchlists, problems

ROOT = Path(__file__).resolve().parents[2]


def _pack(tmp_path: Path, text: str, name: str = "pack.yaml") -> Path:
    folder = tmp_path / "packs"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def _found(path: Path) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in problems(path)]


def test_an_unknown_key_does_not_hide_an_unknown_rule_term_in_the_same_pack(tmp_path):
    folder = _pack(tmp_path, """\
        topics:
          - id: visits
            title: Visits
            severty: high
            terms:
              visit: {en: [visit]}
            rules:
              - id: travel
                any_of: [vist]
        """)
    found = _found(folder)
    assert [line for line, _ in found] == [4, 9], found
    assert "unknown key" in found[0][1] and "unknown term 'vist'" in found[1][1]
    with pytest.raises(ConfigError) as raised:
        load_watchlists(folder)
    assert len(raised.value.problems) == 2


def test_a_term_with_no_valid_spelling_is_reported_once_and_rules_naming_it_still_resolve(tmp_path):
    folder = _pack(tmp_path, """\
        topics:
          - id: visits
            title: Visits
            terms:
              visit: {en: ["a*"]}
              talks: {en: [talks]}
            rules:
              - id: travel
                all_of: [visit, talks]
              - id: other
                any_of: [nope]
        """)
    found = _found(folder)
    assert [line for line, _ in found] == [5, 11], found
    assert "wildcard" in found[0][1] and "unknown term 'nope'" in found[1][1]


def test_a_broken_rule_does_not_hide_a_bad_reference_in_another_topic_or_file(tmp_path):
    _pack(tmp_path, """\
        topics:
          - id: visits
            title: Visits
            terms:
              visit: {en: [visit], ru: [визит]}
            rules:
              - id: travel
                near: 5
                any_of: [visit]
        """, "a.yaml")
    folder = _pack(tmp_path, """\
        topics:
          - id: deals
            title: Deals
            terms:
              deal: {en: [deal]}
            rules:
              - id: deal
                any_of: [deal, visits.meeting]
        """, "b.yaml")
    found = [(Path(p.file).name, p.line) for p in problems(folder)]
    assert found == [("a.yaml", 7), ("b.yaml", 8)], problems(folder)


def test_a_stage_settings_typo_does_not_hide_the_problems_of_the_files_it_names(tmp_path):
    (tmp_path / "newswatch.yaml").write_text("ingest:\n  interval_flor_s: 2\nsubscriptions: subs.yaml\n")
    (tmp_path / "subs.yaml").write_text("subscriptions:\n  - name: x\n    url: http://h/\n    secret_env: S\n"
                                        "    colour: red\n")
    found = sorted((Path(p.file).name, p.line, p.key) for p in collect_problems(tmp_path))
    assert found == [("newswatch.yaml", 2, "ingest.interval_flor_s"), ("subs.yaml", 5, "subscriptions.0.colour")]


# --- duplicate spellings ---------------------------------------------------------------------------

DUPLICATES = """\
    topics:
      - id: air
        title: Air defence
        terms:
          system:
            any: [KM-SAM, THAAD]
            en: [Iron Dome, km-sam]
            ru: [THAAD, «Бук», «Бук»]
          context:
            en: [Iron Dome]
        rules:
          - id: r
            all_of: [system, context]
    """


def test_a_spelling_written_twice_in_one_term_is_reported_with_both_lines(tmp_path):
    found = _found(_pack(tmp_path, DUPLICATES))
    assert [line for line, _ in found] == [7, 8, 8], found
    assert "duplicate spelling 'km-sam' in term 'system' (already listed under any at line 6)" in found[0][1]
    assert "'THAAD'" in found[1][1] and "'«Бук»'" in found[2][1] and "under ru at line 8" in found[2][1]


def test_the_same_spelling_in_two_terms_or_two_languages_is_not_a_duplicate(tmp_path):
    folder = _pack(tmp_path, """\
        topics:
          - id: air
            title: Air defence
            terms:
              system: {en: [Iron Dome, Marvel], ru: [Marvel]}
              context: {en: [Iron Dome]}
            rules:
              - id: r
                all_of: [system, context]
        """)
    assert problems(folder) == []


def test_the_readme_watchlist_example_adds_terms_the_pack_does_not_have(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    comment = re.search(r"# seeds/watchlists/air_defense_system\.yaml \(excerpt\): add (.*)", readme).group(1)
    added = re.findall(r'"([^"]+)"', comment)
    assert added, comment
    packs = tmp_path / "watchlists"
    shutil.copytree(SEEDS_DIR / "watchlists", packs)
    pack = packs / "air_defense_system.yaml"
    text = pack.read_text(encoding="utf-8")
    assert "        any: [" in text
    pack.write_text(text.replace("        any: [", "        any: [" + "".join(f"{t}, " for t in added), 1),
                    encoding="utf-8")
    assert problems(packs) == []
