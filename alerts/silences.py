"""Silences set from the command line, and picked up by a running dispatcher without a restart.

`add_silence(path, silence)` appends to the `silences:` list of the subscriptions file and
`remove_silences(path, numbers, expired_at)` takes entries out of it. Both edit the file's lines
(a silence's own lines, with the comment lines right above it), so every other line, comment and
indent stays as the user wrote it; the result must parse to exactly the expected silences and pass
`newswatch check`, or nothing is written. Layouts that line edits cannot handle (a flow-style
`silences: [...]`, no list yet) go through a ruamel round trip with the file's own indentation.
`SilenceWatcher` re-reads that list when the file changes, so `newswatch alerts silence add`
takes effect within seconds; an invalid edit is reported and the old list kept.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from alerts.subscriptions import Silence, load_subscriptions_text, topic_problems
from newswatch.errors import ConfigError, NewswatchError
from newswatch.yamlconf import read_config_text


def add_silence(path: Path, silence: Silence) -> None:
    """Append `silence` to the file's `silences:` (ConfigError, and no write, if the result is invalid)."""
    text = path.read_text(encoding="utf-8")
    before = load_subscriptions_text(text, str(path)).silences
    entry = CommentedMap()
    entry["matchers"] = CommentedMap(silence.matchers.model_dump(exclude_none=True))
    entry["expires_at"] = silence.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if silence.subscriptions:
        entry["subscriptions"] = list(silence.subscriptions)
    if silence.comment:
        entry["comment"] = silence.comment
    # the file keeps whole seconds, so that is what reading it back must give
    expected = (*before, silence.model_copy(update={"expires_at": silence.expires_at.replace(microsecond=0)}))
    layout = _SequenceLines.of(text)
    if layout is not None and layout.items:
        lines = layout.lines
        # the entry as the file would indent it, moved to the column of the other dashes
        block = _dump([entry], _round_trip(text)[0]).splitlines(keepends=True)
        dumped_at = len(block[0]) - len(block[0].lstrip(" "))
        indent = " " * layout.dash_column
        new = [indent + line[dumped_at:] if line.strip() else line for line in block]
        at = layout.items[-1][1]  # after the last silence's own lines
        if at and not lines[at - 1].endswith("\n"):
            lines = [*lines[:at - 1], lines[at - 1] + "\n", *lines[at:]]
        if _write_if(path, "".join([*lines[:at], *new, *lines[at:]]), expected):
            return
    yaml, doc = _round_trip(text)
    doc = doc or CommentedMap()
    if not isinstance(doc.get("silences"), list):
        doc["silences"] = CommentedSeq()
    doc["silences"].append(entry)
    _write_checked(path, _dump(doc, yaml), expected)


def remove_silences(path: Path, numbers: Iterable[int] = (), expired_at: datetime | None = None) -> list[Silence]:
    """Take silences out of the file: those numbered `numbers` (1 for the first in the file, as
    `silence list` shows them) and, with `expired_at`, every one expired by then. Returns what
    was removed. An unknown number is a ValueError and nothing is written."""
    text = path.read_text(encoding="utf-8")
    silences = load_subscriptions_text(text, str(path)).silences  # a broken file is reported, not edited
    wanted = set(numbers)
    unknown = sorted(n for n in wanted if not 1 <= n <= len(silences))
    if unknown:
        raise ValueError(f"{path}: no silence #{', #'.join(map(str, unknown))} "
                         f"(the file has {len(silences)}; see `newswatch alerts silence list --all`)")
    doomed = [i for i, item in enumerate(silences)
              if i + 1 in wanted or (expired_at is not None and not item.active(expired_at))]
    if not doomed:
        return []
    expected = tuple(item for i, item in enumerate(silences) if i not in doomed)
    layout = _SequenceLines.of(text)
    if layout is not None and len(layout.items) == len(silences):
        lines = list(layout.lines)
        for i in reversed(doomed):
            first, end = layout.items[i]
            del lines[first:end]
        if not expected:  # an empty block list would read as null: say [] on the key's line
            key = lines[layout.key_line]
            colon = key.index("silences:") + len("silences:")
            lines[layout.key_line] = key[:colon] + " []" + key[colon:]
        if _write_if(path, "".join(lines), expected):
            return [silences[i] for i in doomed]
    yaml, doc = _round_trip(text)
    for i in reversed(doomed):
        del doc["silences"][i]
    _write_checked(path, _dump(doc, yaml), expected)
    return [silences[i] for i in doomed]


class _SequenceLines:
    """Where each silence of a block-style `silences:` list sits in the file's lines.

    `items[i]` is (first, end): the line range to delete to remove silence i, from the comment
    lines directly above its dash to its last line that is not blank or a comment (comments
    below it belong to what follows). `dash_column` is the indent of the dashes.
    """

    def __init__(self, lines: list[str], key_line: int, items: list[tuple[int, int]], dash_column: int):
        self.lines = lines
        self.key_line = key_line
        self.items = items
        self.dash_column = dash_column

    @classmethod
    def of(cls, text: str) -> "_SequenceLines | None":
        _, doc = _round_trip(text)
        seq = doc.get("silences") if isinstance(doc, CommentedMap) else None
        if not isinstance(seq, CommentedSeq) or seq.fa.flow_style():
            return None
        lines = text.splitlines(keepends=True)
        key_line = doc.lc.key("silences")[0]
        keys = list(doc)
        after = keys[keys.index("silences") + 1:]
        stop = doc.lc.key(after[0])[0] if after else len(lines)
        dashes = []
        for i in range(len(seq)):
            line, column = seq.lc.item(i)
            while line > key_line and not lines[line].lstrip().startswith("-"):
                line -= 1  # the dash on a line of its own, the item below it
            if not lines[line].lstrip().startswith("-"):
                return None
            dashes.append(line)
        if any(b <= a for a, b in zip(dashes, dashes[1:])):
            return None
        items = []
        for i, dash in enumerate(dashes):
            last = (dashes[i + 1] if i + 1 < len(dashes) else stop) - 1
            while last > dash and _is_note(lines[last]):
                last -= 1
            first = dash
            while first - 1 > key_line and lines[first - 1].strip().startswith("#"):
                first -= 1
            items.append((first, last + 1))
        dash_column = len(lines[dashes[0]]) - len(lines[dashes[0]].lstrip()) if dashes else 2
        return cls(lines, key_line, items, dash_column)


def _is_note(line: str) -> bool:
    return not line.strip() or line.strip().startswith("#")


def _round_trip(text: str) -> tuple[YAML, object]:
    """A round-trip loader set to the file's own indentation (so a dump changes no other line's indent)."""
    doc, indent, offset = load_yaml_guess_indent(text)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    if indent is not None:  # "  - name: x\n    url: y" is indent 4, offset 2: maps inside indent by 2
        offset = offset or 0
        yaml.indent(mapping=max(2, indent - offset), sequence=indent, offset=offset)
    return yaml, yaml.load(text)


def _dump(data, yaml: YAML | None = None) -> str:
    out = io.StringIO()
    (yaml or YAML(typ="rt")).dump(data, out)
    return out.getvalue()


def _write_if(path: Path, text: str, expected: tuple[Silence, ...]) -> bool:
    """Write `text` if it is valid and holds exactly `expected`; False (nothing written) otherwise."""
    try:
        parsed = load_subscriptions_text(text, str(path))
    except Exception:
        return False
    if parsed.silences != expected:
        return False
    _write(path, text)
    return True


def _write_checked(path: Path, text: str, expected: tuple[Silence, ...]) -> None:
    parsed = load_subscriptions_text(text, str(path))  # never write a file `newswatch check` would reject
    if parsed.silences != expected:
        raise ValueError(f"{path}: the edited file would not hold the expected silences; nothing was written")
    _write(path, text)


class SilencesNotWritable(NewswatchError):
    """The subscriptions file cannot be written (e.g. the read-only config mount of docker compose)."""


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SilencesNotWritable(
            f"cannot write {path} ({exc.strerror or exc}); nothing was changed. Silences live in the "
            f"subscriptions file: edit it where it is writable (with docker compose, seeds/ on the host, "
            f"e.g. `newswatch alerts silence add --config seeds/deploy.yaml ...` in the checkout); "
            f"a running `newswatch alerts` re-reads it within seconds") from None


def active_silences(silences: tuple[Silence, ...], now: datetime) -> list[Silence]:
    return [s for s in silences if s.active(now)]


class SilenceWatcher:
    """Re-reads the silences of a subscriptions file when its modification time changes."""

    def __init__(self, path: Path, known_topics: set[str] | None = None):
        self.path = path
        self.known_topics = known_topics  # when given, a silence of a topic no pack defines is an error
        self._stamp = self._current_stamp()

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def poll(self) -> tuple[Silence, ...] | None:
        """The file's silences if it changed since the last poll, else None; ConfigError if it is invalid now."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        text = read_config_text(self.path)
        parsed = load_subscriptions_text(text, str(self.path))
        if self.known_topics is not None:
            unknown = [p for p in topic_problems(text, str(self.path), self.known_topics) if p.key.startswith("silences")]
            if unknown:
                raise ConfigError(unknown)
        return parsed.silences
