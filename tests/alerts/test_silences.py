"""Silence edits touch only the silence's own lines: other lines, comments and indents stay as written."""

from datetime import datetime, timezone

import pytest

from alerts.silences import add_silence, remove_silences
from alerts.subscriptions import Silence, SilenceMatchers, load_subscriptions

FILE = """\
# the desk's subscriptions
subscriptions:
  - name: desk
    url: http://127.0.0.1:9/
    secret_env: NW_CLI_SECRET
silences:
  # first: TASS repeats everything
  - matchers: {source: TASS}
    expires_at: 2030-01-01T00:00:00Z
  # second: the S-400 story
  - matchers:
      term: S-400
    expires_at: 2030-01-01T00:00:00Z
    comment: known story

  # third: arms deals
  - matchers: {topic: arms_deal}
    expires_at: 2030-01-01T00:00:00Z
# trailing note
"""
LINES = FILE.splitlines(keepends=True)
OWN_LINES = {1: LINES[6:9], 2: LINES[9:14], 3: LINES[15:18]}  # each silence with the comment above it


@pytest.mark.parametrize("number", [1, 2, 3])
def test_removing_a_silence_removes_its_lines_and_its_comment_only(tmp_path, number):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(FILE, encoding="utf-8")
    removed = remove_silences(path, [number])
    assert len(removed) == 1
    expected = [line for line in LINES if not any(line is own for own in OWN_LINES[number])]
    assert path.read_text(encoding="utf-8") == "".join(expected)


def test_removing_every_silence_leaves_an_empty_list_and_the_comments_around_it(tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(FILE, encoding="utf-8")
    remove_silences(path, [1, 2, 3])
    text = path.read_text(encoding="utf-8")
    assert "silences: []\n" in text and text.startswith(LINES[0]) and text.endswith("# trailing note\n")
    assert load_subscriptions(path).silences == ()


def test_adding_a_silence_appends_lines_in_the_files_own_indent(tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(FILE, encoding="utf-8")
    new = Silence(matchers=SilenceMatchers(topic="ministerial_visit", term="2+2: «talks»"),
                  expires_at=datetime(2031, 1, 1, tzinfo=timezone.utc), subscriptions=("desk",), comment="a: b # c")
    add_silence(path, new)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("".join(LINES[:18])) and text.endswith("# trailing note\n")
    added = text[len("".join(LINES[:18])):-len("# trailing note\n")]
    assert added.startswith("  - matchers:\n      topic: ministerial_visit\n")
    assert load_subscriptions(path).silences[-1] == new


@pytest.mark.parametrize("layout", [
    "silences: [{matchers: {topic: a}, expires_at: '2031-01-01T00:00:00Z'}, "
    "{matchers: {topic: b}, expires_at: '2031-01-01T00:00:00Z'}]\n",
    "silences:\n- matchers: {topic: a}\n  expires_at: '2031-01-01T00:00:00Z'\n"
    "- matchers: {topic: b}\n  expires_at: '2031-01-01T00:00:00Z'\n",
])
def test_flow_and_unindented_lists_are_edited_too(tmp_path, layout):
    path = tmp_path / "subscriptions.yaml"
    path.write_text("subscriptions:\n- name: desk\n  url: http://127.0.0.1:9/\n  secret_env: NW_CLI_SECRET\n" + layout,
                    encoding="utf-8")
    remove_silences(path, [1])
    add_silence(path, Silence(matchers=SilenceMatchers(topic="c"), expires_at=datetime(2031, 1, 1, tzinfo=timezone.utc)))
    assert [s.matchers.topic for s in load_subscriptions(path).silences] == ["b", "c"]
