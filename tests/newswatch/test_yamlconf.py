"""The strict YAML loader, driven by the good and bad files under tests/data/config/.

Each bad file's first line says what must be reported: `# expect: LINE:COL KEY MESSAGE`
(KEY `-` when the problem has no key).
"""

from pathlib import Path

import pytest

from newswatch.config import AppConfig, collect_problems, load_config
from newswatch.errors import ConfigError
from newswatch.yamlconf import StrictModel, load_file, load_text

DATA = Path(__file__).parent.parent / "data" / "config"
BAD = sorted((DATA / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", sorted((DATA / "good").glob("*.yaml")), ids=lambda p: p.name)
def test_good_files_load(path):
    assert isinstance(load_file(path, AppConfig), AppConfig)


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_files_report_file_line_column_key(path):
    expect = path.read_text().splitlines()[0].removeprefix("# expect: ")
    position, key, message = expect.split(" ", 2)
    line, column = (int(n) for n in position.split(":"))
    with pytest.raises(ConfigError) as info:
        load_file(path, AppConfig)
    problem = info.value.problems[0]
    assert (problem.file, problem.line, problem.column) == (str(path), line, column), str(problem)
    assert problem.key == ("" if key == "-" else key)
    assert message in problem.message
    assert str(info.value).startswith(f"{path}:{line}:{column}: ")


def test_all_problems_are_reported_not_just_the_first():
    text = "kafka:\n  topic_prefx: a\n  bootstrap: b\nfeeeds: x\n"
    with pytest.raises(ConfigError) as info:
        load_text(text, AppConfig, "n.yaml")
    assert sorted((p.line, p.key) for p in info.value.problems) == [
        (2, "kafka.topic_prefx"), (3, "kafka.bootstrap"), (4, "feeeds")]


def test_models_are_immutable():
    config = load_text("feeds: f.yaml\n", AppConfig)
    with pytest.raises(Exception):
        config.feeds = Path("other.yaml")


def test_missing_and_non_utf8_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: file not found"):
        load_file(tmp_path / "missing.yaml", AppConfig)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("feeds: caf\xe9.yaml\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin.yaml: not UTF-8"):
        load_file(latin, AppConfig)


def test_nested_list_items_point_at_their_line():
    class Item(StrictModel):
        name: str

    class Doc(StrictModel):
        items: list[Item]

    with pytest.raises(ConfigError) as info:
        load_text("items:\n  - name: a\n  - name: b\n    colour: red\n", Doc, "d.yaml")
    problem = info.value.problems[0]
    assert (problem.line, problem.key, problem.message) == (4, "items.1.colour", "unknown key")


def test_paths_resolve_against_the_config_folder_and_missing_ones_are_problems(tmp_path):
    (tmp_path / "newswatch.yaml").write_text("feeds: feeds.yaml\nsubscriptions: /nonexistent/subs.yaml\n")
    (tmp_path / "feeds.yaml").write_text("feeds: []\n")
    config = load_config(tmp_path)
    assert config.resolve(config.feeds) == tmp_path / "feeds.yaml"
    problems = collect_problems(tmp_path)
    assert [(p.key, "does not exist" in p.message) for p in problems] == [("subscriptions", True)]
