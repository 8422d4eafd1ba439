"""Strict YAML loading into immutable pydantic models, with file:line:column in every error.

`load_text(text, model, source)` parses and validates a string; `load_file(path, model)`
reads a file first. Unknown keys, duplicate keys and wrong types are all reported
together, each pointing at the line of the offending key or value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from newswatch.errors import ConfigError, ConfigProblem

M = TypeVar("M", bound=pydantic.BaseModel)

Position = tuple[int, int]  # 1-based line and column


class StrictModel(pydantic.BaseModel):
    """Base for every config model: immutable, unknown keys rejected."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple, Position]]:
    """Parse YAML into plain Python values plus a map from key path to (line, column)."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        context = exc.context or ""
        if context and exc.context_mark is not None and exc.context_mark is not mark:
            context += f" (started at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        message = " ".join(str(part) for part in (context, exc.problem) if part)
        raise ConfigError.single(source, f"invalid YAML: {message}", line=line, column=col) from None
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. bad encoding)
        raise ConfigError.single(source, f"invalid YAML: {exc}") from None
    positions: dict[tuple, Position] = {(): (1, 1)}
    return _plain(doc, (), positions), positions


def _plain(node: Any, path: tuple, positions: dict[tuple, Position]) -> Any:
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            line, col = node.lc.key(key)
            positions[path + (key,)] = (line + 1, col + 1)
            out[str(key) if not isinstance(key, (str, int)) else key] = _plain(value, path + (key,), positions)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for index, value in enumerate(node):
            line, col = node.lc.item(index)
            positions[path + (index,)] = (line + 1, col + 1)
            out_list.append(_plain(value, path + (index,), positions))
        return out_list
    if isinstance(node, bool) or node is None:
        return node
    for plain_type in (str, int, float):  # ruamel wraps scalars in subclasses
        if isinstance(node, plain_type):
            return plain_type(node)
    return node


def position_of(positions: dict[tuple, Position], loc: tuple) -> Position | None:
    """The position of the deepest known prefix of a key path."""
    for end in range(len(loc), -1, -1):
        pos = positions.get(tuple(loc[:end]))
        if pos is not None:
            return pos
    return None


def problems_from_validation(exc: pydantic.ValidationError, source: str,
                             positions: dict[tuple, Position], base: tuple = ()) -> list[ConfigProblem]:
    """Turn pydantic's errors into ConfigProblems that point at file lines."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = base + tuple(part for part in err["loc"] if not _is_union_tag(part))
        pos = position_of(positions, loc)
        key = ".".join(str(p) for p in loc)
        message = _message(err)
        problems.append(ConfigProblem(source, pos[0] if pos else None, pos[1] if pos else None, key, message))
    return problems


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts the name of the tried union member or validator into loc; they are not keys.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def validate(data: Any, model: type[M], source: str, positions: dict[tuple, Position],
             context: dict | None = None) -> M:
    """Validate already-parsed data, raising ConfigError with positions."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, source, positions)) from None


def load_text(text: str, model: type[M], source: str = "<string>", context: dict | None = None) -> M:
    """Parse and validate YAML text into `model`; every problem is reported with file:line:column."""
    data, positions = parse_yaml(text, source)
    return validate(data, model, source, positions, context)


def read_config_text(path: str | Path) -> str:
    """A config file's text, or a ConfigError naming the file: missing, unreadable or not UTF-8."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.single(str(path), "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError.single(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError.single(str(path), f"cannot read: {exc.strerror}") from None


def load_file(path: str | Path, model: type[M], context: dict | None = None) -> M:
    """Read a YAML file and validate it into `model`."""
    return load_text(read_config_text(path), model, str(path), context)
