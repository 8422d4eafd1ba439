"""Strict validation of topic packs: each bad file gives one clear error naming file:line."""

import json
import shutil

import pytest

from newswatch.config import collect_problems
from newswatch.errors import ConfigError
from processors.detection import load_watchlists, problems
from tests.processors.detection.conftest import DATA, SEED_WATCHLISTS


@pytest.mark.parametrize("name, line, message", [
    ("unknown-key.yaml", 4, "severty: unknown key"),
    ("unsafe-regex.yaml", 6, "invalid regex"),
    ("invalid-regex.yaml", 6, "invalid regex"),
    ("empty-term.yaml", 7, "empty term"),
    ("unknown-term.yaml", 9, "unknown term 'vist'"),
    ("unknown-topic.yaml", 8, "unknown topic 'air_defence'"),
    ("duplicate-topic.yaml", 6, "duplicate topic id 'visits' (first defined at"),
    ("duplicate-rule.yaml", 10, "duplicate rule id 'travel'"),
    ("duplicate-term.yaml", 6, "duplicate key"),
    ("short-wildcard.yaml", 6, "at least 3 letters before '*'"),
    ("inner-wildcard.yaml", 6, "only allowed at the end of a word"),
    ("near-one-term.yaml", 7, "at least two things"),
    ("broken-yaml.yaml", 4, "invalid YAML"),
    ("no-topics.yaml", 2, "at least one topic"),
    ("following-without-within.yaml", 8, "`following: true` needs `within: N`"),
    ("same-sentence-and-within.yaml", 8, "choose `within` or `same_sentence`, not both"),
    ("unused-term.yaml", 7, "term 'ministre' is not used by any rule or exclusion"),
])
def test_each_bad_pack_gives_one_error_with_file_and_line(name, line, message):
    path = DATA / "bad" / name
    found = problems(path)
    assert len(found) == 1, found
    (problem,) = found
    assert problem.file == str(path)
    assert problem.line == line
    assert message in str(problem)
    assert str(problem).startswith(f"{path}:{line}")
    with pytest.raises(ConfigError) as raised:
        load_watchlists(path)
    assert str(raised.value) == str(problem)


def test_good_packs_compile():
    watchlist = load_watchlists(DATA / "good")
    assert [t.id for t in watchlist.topics] == ["sam_deal", "thaad"]
    assert problems(DATA / "good") == []


def test_a_folder_reports_every_bad_file():
    found = problems(DATA / "bad")
    assert {p.file.rsplit("/", 1)[-1] for p in found} >= {"unknown-key.yaml", "empty-term.yaml", "broken-yaml.yaml"}


def test_duplicate_topic_across_files_names_both(tmp_path):
    shutil.copy(DATA / "good" / "minimal.yaml", tmp_path / "a.yaml")
    shutil.copy(DATA / "good" / "minimal.yaml", tmp_path / "b.yaml")
    (problem,) = problems(tmp_path)
    assert problem.file == str(tmp_path / "b.yaml") and problem.line == 3
    assert f"first defined at {tmp_path / 'a.yaml'}:3" in problem.message


def test_version_is_a_stable_content_hash(tmp_path):
    first = load_watchlists(SEED_WATCHLISTS).version
    assert load_watchlists(SEED_WATCHLISTS).version == first
    copy = tmp_path / "packs"
    shutil.copytree(SEED_WATCHLISTS, copy)
    assert load_watchlists(copy).version == first  # the folder's location does not matter
    pack = copy / "arms_deal.yaml"
    pack.write_text(pack.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert load_watchlists(copy).version != first


def test_missing_or_empty_folder(tmp_path):
    assert "no such file" in str(problems(tmp_path / "nope")[0])
    assert "no watchlist files" in str(problems(tmp_path)[0])


def test_newswatch_check_validates_the_watchlists_it_names(tmp_path):
    (tmp_path / "watchlists").mkdir()
    shutil.copy(DATA / "bad" / "empty-term.yaml", tmp_path / "watchlists" / "pack.yaml")
    config = tmp_path / "newswatch.yaml"
    config.write_text("watchlists: watchlists\n", encoding="utf-8")
    (problem,) = collect_problems(config)
    assert problem.file == str(tmp_path / "watchlists" / "pack.yaml") and problem.line == 7


def test_json_packs_load_fast_and_still_report_lines(tmp_path):
    good = {"topics": [{"id": "t", "title": "T", "terms": {"a": {"en": ["alpha"]}}}]}
    (tmp_path / "good.yaml").write_text(json.dumps(good), encoding="utf-8")
    assert [t.id for t in load_watchlists(tmp_path).topics] == ["t"]
    bad = {"topics": [{"id": "u", "title": "U", "terms": {"a": {"en": ["alpha"]}},
                       "rules": [{"id": "r", "any_of": ["nope"]}]}]}
    (tmp_path / "bad.yaml").write_text(json.dumps(bad, indent=1), encoding="utf-8")
    (problem,) = problems(tmp_path)
    assert problem.file == str(tmp_path / "bad.yaml") and problem.line == 17  # the line of "nope"
    assert "unknown term 'nope'" in problem.message


def test_the_automaton_is_a_dfa_within_its_memory_budget_and_an_nfa_beyond_it(monkeypatch):
    from processors.detection import watchlist as wl_module
    from processors.detection.watchlist import KeyEntry, build_automaton, dfa_size_estimate

    keys = {k: (KeyEntry(i, None, False, False),) for i, k in
            enumerate(["s 400", "s400", "air defence", "air defence system", "صفقه", "министр"])}
    text = "the s400 and an air defence system; صفقه; министр"
    dfa = build_automaton(keys)
    assert dfa.implementation == "dfa"
    found = sorted((list(keys)[k], text[s:e]) for k, s, e in dfa.find(text))
    # Overlapping occurrences all come back, in character (not UTF-8 byte) offsets.
    assert found == [("air defence", "air defence"), ("air defence system", "air defence system"),
                     ("s400", "s400"), ("министр", "министр"), ("صفقه", "صفقه")]
    # One byte class per distinct byte: the estimate grows with states x classes.
    assert dfa_size_estimate(["ab"]) < dfa_size_estimate(["ab", "cd"]) < dfa_size_estimate(["абвгд", "ежзий"])
    monkeypatch.setattr(wl_module, "DFA_BUDGET_BYTES", dfa_size_estimate(list(keys)) - 1)
    nfa = build_automaton(keys)
    assert nfa.implementation == "contiguous nfa"
    assert sorted(nfa.find(text)) == sorted(dfa.find(text))
    assert build_automaton({}).find(text) == []


def test_a_compiled_watchlist_survives_pickling_for_other_processes(seed_watchlist):
    import pickle

    from processors.detection import detect
    from tests.processors.detection.conftest import Doc

    copy = pickle.loads(pickle.dumps(seed_watchlist))
    assert copy.version == seed_watchlist.version and copy.automaton.implementation == "dfa"
    article = Doc(title="Egypt buys S-400", text="Egypt signed a contract to buy S-400 air defence systems.", lang="en")
    assert detect(article, copy) == detect(article, seed_watchlist) != ()
