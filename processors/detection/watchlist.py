"""Watchlists: YAML topic packs, validated strictly and compiled once into an immutable `Watchlist`.

A folder holds one or more `*.yaml` packs; each pack lists topics with their terms (per language,
with suffix wildcards and RE2 regexes), exclusions and rules. `load_watchlists(path)` returns the
compiled `Watchlist` or raises ConfigError listing every problem with file:line; `problems(path)`
returns the same problems for `newswatch check`. The file format is documented in docs/detection.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

import ahocorasick_rs
import pydantic

from newswatch.errors import ConfigError, ConfigProblem
from newswatch.schemas import replace_lone_surrogates
from newswatch.yamlconf import StrictModel, _is_union_tag, parse_yaml, position_of, problems_from_validation
from processors.detection.gazetteer import (CASED, SLOT_CLASSES, EntityIndex, Gazetteer, fill_slots,
                                            load_gazetteer, slots_in)
from processors.detection.normalize import NORMALIZATION_VERSION, code_variants, is_code, normalize_term

# Part of Watchlist.version: bump when compilation or rule semantics change.
ENGINE_VERSION = "1"

FIELDS = ("title", "summary", "text")
LANGUAGES = ("ar", "en", "ru")
Field = Literal["title", "summary", "text"]
Severity = Literal["info", "low", "medium", "high", "critical"]

_ID = r"^[a-z][a-z0-9_]*$"
_MIN_STEM = 3  # letters before a `*`: shorter stems ("в*", "ал*") match half the language


# --- the YAML models ---------------------------------------------------------------------------

def _term_words(value: str) -> list[tuple[str, bool]]:
    """A spelling as normalised words, each with "ends in a wildcard" (`министр* обороны`)."""
    return [(word.removesuffix("*"), word.endswith("*")) for word in normalize_term(value).split(" ")]


def _check_variant(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError("a term must be a string")
    if not normalize_term(value.replace("*", "")):
        raise ValueError(f"{value!r}: empty term (nothing left after normalisation)")
    for word, wildcard in _term_words(value):
        if "*" in word:
            raise ValueError(f"{value!r}: '*' is only allowed at the end of a word (suffix wildcard)")
        if wildcard and sum(c.isalnum() for c in word) < _MIN_STEM:
            raise ValueError(f"{value!r}: a wildcard needs at least {_MIN_STEM} letters before '*'")
    return value


def _check_regex(value: str) -> str:
    compiled = compile_regex(value)  # raises ValueError with the reason
    if compiled.search("") is not None:
        raise ValueError(f"{value!r}: the regex matches the empty string")
    return value


Variant = Annotated[pydantic.StrictStr, pydantic.AfterValidator(_check_variant)]
RegexVariant = Annotated[pydantic.StrictStr, pydantic.AfterValidator(_check_regex)]


class TermSpec(StrictModel):
    """One named term: its spellings per language ("any" for script-independent codes) and regexes."""

    any: tuple[Variant, ...] = ()
    ar: tuple[Variant, ...] = ()
    en: tuple[Variant, ...] = ()
    ru: tuple[Variant, ...] = ()
    regex: tuple[RegexVariant, ...] = ()

    @pydantic.model_validator(mode="after")
    def _not_empty(self) -> "TermSpec":
        if not (self.any or self.ar or self.en or self.ru or self.regex):
            raise ValueError("empty term: give at least one spelling (any, ar, en, ru or regex)")
        return self


class ExcludeSpec(StrictModel):
    """Terms that veto the topic: near one of its hits (`within` words), in the same sentence
    (`same_sentence: true`) or anywhere in the article.

    With `following: true` only the hits in the `within` words AFTER the exclusion hit are
    discarded: "also present were ... the foreign minister" lists people after the phrase, while
    the real meeting reported just before it must survive. With `drop: [terms]` only those terms'
    hits are discarded, the others stay: a phone call takes "talks" away from a visit, not the
    minister; without `within` or `same_sentence` such an exclusion drops them in the whole
    article instead of vetoing the topic.
    """

    terms: tuple[str, ...] = pydantic.Field(min_length=1)
    within: int | None = pydantic.Field(default=None, ge=0, le=1000)
    following: bool = False
    same_sentence: bool = False
    drop: tuple[str, ...] = ()

    @pydantic.model_validator(mode="after")
    def _following_needs_within(self) -> "ExcludeSpec":
        if self.following and self.within is None:
            raise ValueError("`following: true` needs `within: N` (how many words after the phrase)")
        if self.same_sentence and self.within is not None:
            raise ValueError("choose `within` or `same_sentence`, not both")
        return self


class RuleSpec(StrictModel):
    """When a topic fires: all_of every term, any_of one of them, none_of none; optionally close together."""

    id: str = pydantic.Field(pattern=_ID)
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    none_of: tuple[str, ...] = ()
    # Terms that must be found too, anywhere in the rule's fields: `near`/`same_sentence` do not
    # bind them ("the two ministers spoke by phone" in one sentence, a minister's title in another).
    anywhere: tuple[str, ...] = ()
    near: int | None = pydantic.Field(default=None, ge=0, le=1000, description="words")
    same_sentence: bool = False
    fields: tuple[Field, ...] = FIELDS
    score: float = pydantic.Field(default=0.8, gt=0, le=1)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> "RuleSpec":
        if not (self.all_of or self.any_of):
            raise ValueError("a rule needs all_of or any_of")
        slots = len(self.all_of) + (1 if self.any_of else 0)
        if (self.near is not None or self.same_sentence) and slots < 2:
            raise ValueError("near/same_sentence need at least two things to bring together "
                             "(two all_of terms, or all_of plus any_of)")
        if self.near is not None and self.same_sentence:
            raise ValueError("choose near or same_sentence, not both")
        if not self.fields:
            raise ValueError("fields must name at least one of title, summary, text")
        return self


class TopicSpecModel(StrictModel):
    id: str = pydantic.Field(pattern=_ID)
    title: str = pydantic.Field(min_length=1)
    severity: Severity = "medium"
    description: str = ""
    terms: dict[str, TermSpec] = pydantic.Field(min_length=1)
    exclude: tuple[ExcludeSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()

    @pydantic.field_validator("terms")
    @classmethod
    def _term_ids(cls, terms: dict[str, TermSpec]) -> dict[str, TermSpec]:
        for name in terms:
            if not re.match(_ID, str(name)):
                raise ValueError(f"term id {name!r} must be lower_snake_case")
        return terms


class WatchlistFile(StrictModel):
    """One topic pack file."""

    topics: tuple[TopicSpecModel, ...] = ()


# --- the compiled form -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Topic:
    """What callers need to know about a topic."""

    id: str
    title: str
    severity: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    all_of: tuple[int, ...]
    any_of: tuple[int, ...]
    none_of: tuple[int, ...]
    near: int | None
    same_sentence: bool
    fields: frozenset[str]
    score: float
    anywhere: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Exclusion:
    terms: tuple[int, ...]
    within: int | None
    following: bool = False
    same_sentence: bool = False
    drop: frozenset[int] = frozenset()  # empty: every term but the exclusion's own


@dataclass(frozen=True, slots=True)
class CompiledTopic:
    topic: Topic
    terms: frozenset[int]  # every term id this topic's rules or exclusions use
    positive: frozenset[int]  # the ones that can raise it
    rules: tuple[Rule, ...]
    exclusions: tuple[Exclusion, ...]


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One automaton key's meaning: which term, in which language, how to check its ends."""

    term: int
    lang: str | None  # None: any language
    wildcard: bool  # letters may follow (визит* -> визитом)
    proclitics: bool  # Arabic: و ف ب ل ك ال may be attached before it
    # Words that must follow, for spellings with a wildcard before their last word
    # ("министр* обороны"): (normalised stem, wildcard) each, checked after the automaton hit.
    tail: tuple[tuple[str, bool], ...] = ()
    # Model codes may carry letters (S-400s, S-300PMU, HQ-9B) but not more digits (S-4000).
    letter_suffix: bool = False


@dataclass(frozen=True, slots=True)
class RegexEntry:
    term: int
    pattern: Any  # a compiled RE2 pattern


@dataclass(frozen=True, eq=False)
class Watchlist:
    """All topic packs compiled together: pass it to `detect()`. Immutable and safe to share.

    Callers use `version` (a hash of the pack files: same files, same version), `topics` and
    `sources`; the other fields are the compiled form the engine reads.
    """

    version: str
    topics: tuple[Topic, ...]
    compiled: tuple[CompiledTopic, ...]
    term_names: tuple[str, ...]  # term id -> "topic.term"
    keys: dict[str, tuple[KeyEntry, ...]]
    regexes: tuple[RegexEntry, ...]
    sources: tuple[str, ...] = ()
    automaton: Matcher | None = field(default=None, repr=False)
    # The gazetteer's entities, whose spellings share the automaton (None: no gazetteer, or
    # loaded with entities=False).
    entities: EntityIndex | None = field(default=None, repr=False)


# The DFA is the fastest automaton (about 18 µs against 31 µs per 3 KB article with the default
# packs) but its table grows with states x byte classes: about 9 MB for the default packs, over
# 120 MB with 10,000 extra terms. Above this estimate the contiguous NFA (a few MB) is used.
DFA_BUDGET_BYTES = 32 * 1024 * 1024


class Matcher:
    """Every normalised spelling in one Aho-Corasick automaton, and what each one means.

    `find(text)` returns (key index, start, end) for every occurrence of every key, overlapping
    ones included, in character offsets; `values[key index]` is (check_left, check_right,
    glued_left, glued_right, entries, tails) as `build_automaton` describes. The compiled
    automaton cannot be pickled, so a pickled Matcher (a watchlist sent to another process)
    carries its keys and is compiled again where it is loaded.
    """

    __slots__ = ("patterns", "values", "lazy_values", "implementation", "_find_all")

    def __init__(self, patterns: tuple[str, ...], values: tuple[tuple | None, ...],
                 lazy_values: tuple[tuple | None, ...] | None = None):
        self.patterns = patterns
        # The gazetteer's spellings are lazy: `values` holds the packs' side of each key (None for
        # a key only the gazetteer's entities use, False for one only its deal cues use; a key
        # both use ends in 1 or 2 alike), so the scan just notes where the gazetteer's keys were
        # found, and `lazy_values` (their gazetteer side) checks them only when the article's
        # entities (or parties) are wanted. Still one automaton pass.
        self.values = values
        self.lazy_values = lazy_values
        if not patterns:
            self.implementation = "none"  # "dfa" or "contiguous nfa" otherwise, for the benchmark
            self._find_all = None
            return
        small = dfa_size_estimate(patterns) <= DFA_BUDGET_BYTES
        self.implementation = "dfa" if small else "contiguous nfa"
        # MATCHKIND_STANDARD with overlapping=True reports every key at every position, as the
        # scan needs ("air defence" and "air defence system" both; the engine keeps the longest).
        automaton = ahocorasick_rs.AhoCorasick(
            patterns, matchkind=ahocorasick_rs.MATCHKIND_STANDARD,
            implementation=ahocorasick_rs.Implementation.DFA if small else ahocorasick_rs.Implementation.ContiguousNFA)
        self._find_all = automaton.find_matches_as_indexes

    def find(self, text: str) -> list[tuple[int, int, int]]:
        if self._find_all is None:
            return []
        try:
            return self._find_all(text, overlapping=True)
        except UnicodeEncodeError:  # a lone UTF-16 surrogate: the automaton reads UTF-8
            return self._find_all(replace_lone_surrogates(text), overlapping=True)

    def __reduce__(self):
        return Matcher, (self.patterns, self.values, self.lazy_values)


def dfa_size_estimate(keys: Iterable[str]) -> int:
    """Bytes a DFA over `keys` would take: one row per trie state (a distinct UTF-8 prefix),
    one 4-byte cell per byte class (at most the distinct bytes, plus one), and half again for
    the match lists; measured 1.3-1.5x the simple product on the default and generated packs."""
    encoded = sorted(key.encode() for key in keys)
    states = 1
    previous = b""
    for key in encoded:
        common = 0
        for a, b in zip(previous, key):
            if a != b:
                break
            common += 1
        states += len(key) - common
        previous = key
    classes = len(set(b"".join(encoded))) + 1
    return states * classes * 4 * 3 // 2


def build_automaton(keys: dict[str, tuple[KeyEntry, ...]], lazy_from: int | None = None,
                    cue_terms: frozenset[int] = frozenset()) -> Matcher:
    """The Aho-Corasick automaton over every normalised spelling (ahocorasick-rs, compiled code).

    Each key's value is (check_left, check_right, glued_left, glued_right, entries, tails);
    `glued_*` say whether any spelling may have letters attached. `entries` are the
    single-key spellings as plain tuples (term, lang, wildcard, proclitics, letter_suffix): the
    scan loop runs once per candidate, so it reads tuples rather than attributes. `tails` holds
    the spellings that go on after the key ("глав* российск* МИД*") as (wildcard, trie) pairs
    (see `_tail_trie`), so a common first word costs one check per distinct next word, not one
    per spelling; a seventh item says the key also has gazetteer spellings (term ids from
    `lazy_from`), which go to `lazy_values` (see Matcher).
    """
    values: list[tuple | None] = []
    lazy_values: list[tuple | None] = []
    for key, entries in keys.items():
        eager = [e for e in entries if lazy_from is None or e.term < lazy_from]
        lazy = [e for e in entries if lazy_from is not None and e.term >= lazy_from]
        # 1: entity spellings (checked when a topic fired); 2: only deal cues (checked when a
        # party topic fired); the packs' side, if any, is checked at once.
        tier = (2 if all(e.term in cue_terms for e in lazy) else 1) if lazy else 0
        values.append(_key_value(key, eager, also_lazy=tier) if eager else (None if tier == 1 else False))
        lazy_values.append(_key_value(key, lazy, also_lazy=0) if lazy else None)
    return Matcher(tuple(keys), tuple(values), tuple(lazy_values) if lazy_from is not None else None)


def _key_value(key: str, entries: list[KeyEntry], also_lazy: int) -> tuple:
    plain = tuple((e.term, e.lang, e.wildcard, e.proclitics, e.letter_suffix) for e in entries if not e.tail)
    tails = tuple((wildcard, _tail_trie([e for e in entries if e.tail and e.wildcard == wildcard]))
                  for wildcard in (False, True) if any(e.tail and e.wildcard == wildcard for e in entries))
    # A candidate glued to a letter is dropped at once unless some spelling allows it.
    glued_left = any(e.proclitics for e in entries)
    glued_right = any(e.wildcard or e.letter_suffix for e in entries)
    return key[0].isalnum(), key[-1].isalnum(), glued_left, glued_right, plain, tails, also_lazy


def _tail_trie(entries: list[KeyEntry], depth: int = 0) -> tuple:
    """The words after a key as a trie: node = (terminals, children).

    `terminals` are (term, lang, proclitics) of the spellings that end at this node; `children`
    are (stem, wildcard, node) for the next word. Spellings sharing words share the checks.
    """
    terminals = tuple((e.term, e.lang, e.proclitics) for e in entries if len(e.tail) == depth)
    groups: dict[tuple[str, bool], list[KeyEntry]] = {}
    for entry in entries:
        if len(entry.tail) > depth:
            groups.setdefault(entry.tail[depth], []).append(entry)
    children = tuple((stem, wildcard, _tail_trie(group, depth + 1)) for (stem, wildcard), group in groups.items())
    return terminals, children


# --- safe regexes ------------------------------------------------------------------------------

def compile_regex(pattern: str):
    """Compile with RE2 (linear time, no backtracking), or raise ValueError saying what is wrong."""
    import re2  # imported here: only packs that use regexes pay for it

    options = re2.Options()
    options.log_errors = False  # the error goes into our ConfigProblem, not onto stderr
    options.max_mem = 8 << 20
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"{pattern!r}: invalid regex ({reason}); RE2 syntax is required "
                         f"(no backreferences or lookaround)") from None


# --- loading -----------------------------------------------------------------------------------

def _pack_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir()
                      if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))
    return [path]


@dataclass
class _Parsed:
    source: str
    text: str
    model: WatchlistFile
    _positions: dict | None = None
    repaired: bool = False  # invalid parts were left out (see _repaired): for finding problems only

    @property
    def positions(self) -> dict:
        """Key path -> (line, column); computed on first use for packs read by the JSON fast path."""
        if self._positions is None:
            self._positions = parse_yaml(self.text, self.source)[1]
        return self._positions


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _DuplicateKey()
    return dict(pairs)


def _fast_json(text: str) -> WatchlistFile | None:
    """Packs written as JSON (valid YAML, typical of generated packs) parse 20x faster this way.

    Returns None whenever anything is off, so the YAML path reports it with line numbers.
    """
    if not text.lstrip().startswith("{"):
        return None
    try:
        model = WatchlistFile.model_validate(json.loads(text, object_pairs_hook=_no_duplicates))
    except (ValueError, pydantic.ValidationError):
        return None
    return model if model.topics else None


def _parse_files(path: Path) -> tuple[list[_Parsed], list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    parsed: list[_Parsed] = []
    if not path.exists():
        return [], [ConfigProblem(str(path), None, None, "", "no such file or folder")]
    files = _pack_files(path)
    if not files:
        return [], [ConfigProblem(str(path), None, None, "", "no watchlist files (*.yaml) in this folder")]
    for file in files:
        source = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(ConfigProblem(source, None, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
            continue
        except OSError as exc:
            problems.append(ConfigProblem(source, None, None, "", f"cannot read: {exc.strerror}"))
            continue
        fast = _fast_json(text)
        if fast is not None:
            parsed.append(_Parsed(source, text, fast))
            continue
        try:
            data, positions = parse_yaml(text, source)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        try:
            model = WatchlistFile.model_validate(data if data is not None else {})
        except pydantic.ValidationError as exc:
            problems.extend(problems_from_validation(exc, source, positions))
            # Check the rest of the pack too (rule references, duplicates): `check` lists every
            # problem at once. The repaired pack is only ever used to find problems.
            repaired = _repaired(data, exc)
            if repaired is not None and repaired.topics:
                parsed.append(_Parsed(source, text, repaired, positions, repaired=True))
            continue
        if not model.topics:
            line, column = position_of(positions, ("topics",)) or (1, 1)
            problems.append(ConfigProblem(source, line, column, "topics", "a watchlist file needs at least one topic"))
            continue
        parsed.append(_Parsed(source, text, model, positions))
    return parsed, problems


# A stand-in for a term whose spellings were all invalid, so rules naming it still resolve.
_PLACEHOLDER_TERM = {"any": ["newswatch placeholder term"]}


def _repaired(data: Any, exc: pydantic.ValidationError, rounds: int = 5) -> WatchlistFile | None:
    """The pack with every part pydantic rejected left out (a bad term replaced by a stand-in),
    or None when no such pack validates. Used to report reference problems beside validation ones."""
    import copy

    data = copy.deepcopy(data)
    for _ in range(rounds):
        doomed = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(part for part in err["loc"] if not _is_union_tag(part))
            if err["type"] == "missing":
                loc = loc[:2] if loc[:1] == ("topics",) and len(loc) <= 3 else loc[:-1]  # a topic without id/title/terms
            doomed.append(loc)
        for loc in sorted(set(doomed), key=lambda loc: [str(p).zfill(8) for p in loc], reverse=True):
            if not _drop(data, loc):
                return None
        try:
            return WatchlistFile.model_validate(data)
        except pydantic.ValidationError as again:
            exc = again
    return None


def _drop(data: Any, loc: tuple) -> bool:
    """Remove the value at `loc` (a term is replaced by the stand-in); False if there is none."""
    if not loc:
        return False
    parent = data
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return True  # already gone with its container
    last = loc[-1]
    if len(loc) == 4 and loc[0] == "topics" and loc[2] == "terms" and isinstance(parent, dict) and last in parent:
        parent[last] = dict(_PLACEHOLDER_TERM)
        return True
    if isinstance(parent, dict) and last in parent:
        del parent[last]
        return True
    if isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        del parent[last]
        return True
    return False


def _problem(parsed: _Parsed, loc: tuple, message: str) -> ConfigProblem:
    pos = position_of(parsed.positions, loc)
    return ConfigProblem(parsed.source, pos[0] if pos else None, pos[1] if pos else None,
                         ".".join(str(p) for p in loc), message)


def _compile(parsed: list[_Parsed], gazetteer: Gazetteer | None = None,
             entities: bool = True) -> tuple[Watchlist | None, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    # Topic ids are global: a rule may name another topic's term as "topic.term".
    topic_at: dict[str, tuple[_Parsed, int]] = {}
    for pack in parsed:
        for index, topic in enumerate(pack.model.topics):
            if topic.id in topic_at:
                first, first_index = topic_at[topic.id]
                first_pos = position_of(first.positions, ("topics", first_index, "id"))
                where = f"{first.source}:{first_pos[0]}" if first_pos else first.source
                problems.append(_problem(pack, ("topics", index, "id"),
                                         f"duplicate topic id {topic.id!r} (first defined at {where})"))
            else:
                topic_at[topic.id] = (pack, index)

    term_names: list[str] = []
    term_index: dict[str, int] = {}
    for topic_id, (pack, index) in topic_at.items():
        for name in pack.model.topics[index].terms:
            term_index[f"{topic_id}.{name}"] = len(term_names)
            term_names.append(f"{topic_id}.{name}")

    def resolve(pack: _Parsed, topic_id: str, ref: str, loc: tuple) -> int | None:
        qualified = ref if "." in ref else f"{topic_id}.{ref}"
        if qualified in term_index:
            return term_index[qualified]
        other_topic, _, term = qualified.partition(".")
        if other_topic not in topic_at:
            problems.append(_problem(pack, loc, f"{ref!r} names an unknown topic {other_topic!r}"))
        elif other_topic == topic_id:
            problems.append(_problem(pack, loc, f"unknown term {term!r} (this topic defines: "
                                                f"{', '.join(sorted(pack_terms(pack, topic_id)))})"))
        else:
            problems.append(_problem(pack, loc, f"topic {other_topic!r} has no term {term!r}"))
        return None

    def pack_terms(pack: _Parsed, topic_id: str) -> list[str]:
        owner, idx = topic_at[topic_id]
        return list(owner.model.topics[idx].terms)

    # A term that only fills other terms' slots ({ministry} in "глав* {country.adj} {ministry}")
    # is a list of words, not a term: it is not compiled into the automaton and needs no rule.
    referenced: set[str] = set()
    in_slots: set[str] = set()
    for topic_id, (pack, index) in topic_at.items():
        spec = pack.model.topics[index]
        for rule in spec.rules:
            for ref in rule.all_of + rule.any_of + rule.none_of + rule.anywhere:
                referenced.add(ref if "." in ref else f"{topic_id}.{ref}")
        for ex in spec.exclude:
            for ref in ex.terms + ex.drop:
                referenced.add(ref if "." in ref else f"{topic_id}.{ref}")
        for term_name, term in spec.terms.items():
            for lang in ("any",) + LANGUAGES:
                for i, written in enumerate(getattr(term, lang)):
                    for name in slots_in(written):
                        if name == term_name:
                            problems.append(_problem(pack, ("topics", index, "terms", term_name, lang, i),
                                                     f"{written!r}: a term cannot name itself in a slot"))
                        elif name not in SLOT_CLASSES:
                            in_slots.add(f"{topic_id}.{name}")
    slot_only = in_slots - referenced

    compiled: list[CompiledTopic] = []
    keys: dict[str, list[KeyEntry]] = {}
    regexes: list[RegexEntry] = []
    for topic_id, (pack, index) in sorted(topic_at.items()):
        spec = pack.model.topics[index]
        base = ("topics", index)
        for name, term in spec.terms.items():
            problems.extend(_duplicate_spellings(pack, base + ("terms", name), name, term))
            term_id = term_index[f"{topic_id}.{name}"]
            if f"{topic_id}.{name}" in slot_only:
                continue
            for lang in ("any",) + LANGUAGES:
                for i, written in enumerate(getattr(term, lang)):
                    variants = _filled(written, None if lang == "any" else lang, spec, name, gazetteer)
                    if variants is None:
                        continue
                    if isinstance(variants, str):
                        problems.append(_problem(pack, base + ("terms", name, lang, i), variants))
                        continue
                    for variant in variants:
                        for key, entry in _key_entries(variant, term_id, None if lang == "any" else lang):
                            keys.setdefault(key, []).append(entry)
            for pattern in term.regex:
                regexes.append(RegexEntry(term_id, compile_regex(pattern)))

        def refs(names: tuple[str, ...], loc: tuple) -> tuple[int, ...]:
            out = []
            for i, ref in enumerate(names):
                resolved = resolve(pack, topic_id, ref, loc + (i,))
                if resolved is not None:
                    out.append(resolved)
            return tuple(out)

        exclusions = tuple(
            Exclusion(refs(ex.terms, base + ("exclude", i, "terms")), ex.within, ex.following, ex.same_sentence,
                      frozenset(refs(ex.drop, base + ("exclude", i, "drop"))))
            for i, ex in enumerate(spec.exclude))
        excluded = {t for ex in exclusions for t in ex.terms}
        rules: list[Rule] = []
        seen_rules: set[str] = set()
        for i, rule in enumerate(spec.rules):
            loc = base + ("rules", i)
            if rule.id in seen_rules:
                problems.append(_problem(pack, loc + ("id",), f"duplicate rule id {rule.id!r} in topic {topic_id!r}"))
            seen_rules.add(rule.id)
            rules.append(Rule(rule.id, refs(rule.all_of, loc + ("all_of",)), refs(rule.any_of, loc + ("any_of",)),
                              refs(rule.none_of, loc + ("none_of",)), rule.near, rule.same_sentence,
                              frozenset(rule.fields), rule.score, refs(rule.anywhere, loc + ("anywhere",))))
        own_terms = tuple(term_index[f"{topic_id}.{name}"] for name in spec.terms)
        if not rules:
            # No rules: any of the topic's own terms (except pure exclusion terms) raises it.
            positive = tuple(t for t in own_terms if t not in excluded and term_names[t] not in slot_only)
            rules.append(Rule("any_term", (), positive, (), None, False, frozenset(FIELDS), 0.8))
        positive_terms = frozenset(t for r in rules for t in r.all_of + r.any_of + r.anywhere)
        used = positive_terms | {t for r in rules for t in r.none_of} | excluded
        compiled.append(CompiledTopic(Topic(spec.id, spec.title, spec.severity, spec.description.strip()),
                                      frozenset(used), positive_terms, tuple(rules), exclusions))
    # A term no rule or exclusion names (here or from another topic) is almost always a typo;
    # checked only when every reference resolved, so one misspelt name gives one error, not two.
    used_anywhere = {t for c in compiled for t in c.terms}
    for topic_id, (pack, index) in sorted(topic_at.items()) if not problems else ():
        if pack.repaired:
            continue  # a term may be used only by a part that was left out
        for name in pack.model.topics[index].terms:
            if term_index[f"{topic_id}.{name}"] not in used_anywhere and f"{topic_id}.{name}" not in slot_only:
                problems.append(_problem(pack, ("topics", index, "terms", name),
                                         f"term {name!r} is not used by any rule or exclusion"))
    if problems:
        return None, sorted(problems, key=lambda p: (p.file, p.line or 0, p.column or 0))
    digest = hashlib.sha256(f"newswatch-watchlist n{NORMALIZATION_VERSION} e{ENGINE_VERSION}\n".encode())
    for pack in parsed:
        digest.update(Path(pack.source).name.encode() + b"\0" + pack.text.encode() + b"\0")
    entity_index = None
    first_entity_term = len(term_names)
    if gazetteer is not None:
        for name, text in gazetteer.sources:
            digest.update(b"gazetteer/" + name.encode() + b"\0" + text.encode() + b"\0")
        if entities:
            digest.update(b"entities\0")
            entity_index = _add_gazetteer_terms(gazetteer, term_names, keys)
    unique_keys = {k: tuple(dict.fromkeys(v)) for k, v in keys.items()}
    return Watchlist(
        version=digest.hexdigest()[:16],
        topics=tuple(c.topic for c in compiled),
        compiled=tuple(compiled),
        term_names=tuple(term_names),
        keys=unique_keys,
        regexes=tuple(regexes),
        sources=tuple(p.source for p in parsed),
        automaton=build_automaton(unique_keys, lazy_from=first_entity_term,
                                  cue_terms=frozenset(entity_index.cues) if entity_index else frozenset()),
        entities=entity_index,
    ), []


def _duplicate_spellings(pack: _Parsed, loc: tuple, name: str, term: TermSpec) -> list[ConfigProblem]:
    """A spelling written twice in one term (case and spacing aside; `any` counts for every
    language): harmless to matching, but a sign the author thought something was missing."""
    found = []
    first: dict[str, tuple[str, int]] = {}
    for lang in ("any",) + LANGUAGES + ("regex",):
        for i, variant in enumerate(getattr(term, lang)):
            key = " ".join(variant.casefold().split())
            earlier = first.get(key)
            if earlier is not None and (earlier[0] == lang or (earlier[0] == "any" and lang in LANGUAGES)):
                pos = position_of(pack.positions, loc + earlier)
                where = f"line {pos[0]}" if pos else "above"
                found.append(_problem(pack, loc + (lang, i), f"duplicate spelling {variant!r} in term {name!r} "
                                                             f"(already listed under {earlier[0]} at {where})"))
            elif earlier is None or lang == "any":
                first[key] = (lang, i)
    return found


def _filled(written: str, lang: str | None, spec: TopicSpecModel, term_name: str,
            gazetteer: Gazetteer | None) -> list[str] | str | None:
    """The spellings a written term stands for once its slots are filled, the problem (a str), or
    None for a term naming itself (reported elsewhere)."""
    if "{" not in written and "}" not in written:
        return [written]
    names = slots_in(written)
    if written.count("{") != len(names) or written.count("}") != len(names):
        return f"{written!r}: unbalanced braces (a slot is written {{class}}, e.g. {{country.adj}})"
    for name in names:
        if name in SLOT_CLASSES:
            if gazetteer is None:
                return f"{written!r}: slot {{{name}}} needs the gazetteer folder (gazetteer/ beside the packs)"
        elif name == term_name:
            return None  # reported once, by _compile
        elif name not in spec.terms:
            return (f"{written!r}: unknown slot class {name!r} (gazetteer classes: {', '.join(SLOT_CLASSES)}; "
                    f"or a term of this topic: {', '.join(sorted(spec.terms))})")

    def lookup(name: str, slot_lang: str | None) -> tuple[str, ...]:
        if name in SLOT_CLASSES:
            langs = [slot_lang, None] if slot_lang else [None] + list(LANGUAGES)
            return tuple(dict.fromkeys(v for code in langs for v in gazetteer.classes.get((name, code), ())))
        other = spec.terms[name]
        values = list(getattr(other, slot_lang or "any")) + (list(other.any) if slot_lang else [])
        return tuple(v for v in dict.fromkeys(values) if "{" not in v)

    out = fill_slots(written, lang, lookup)
    if not out:
        return f"{written!r}: its slots stand for no spelling in this language"
    for variant in out:
        try:
            _check_variant(variant)
        except ValueError as exc:
            return f"{written!r} gives {exc}"
    return list(dict.fromkeys(out))


def _add_gazetteer_terms(gazetteer: Gazetteer, term_names: list[str],
                         keys: dict[str, list[KeyEntry]]) -> EntityIndex:
    """Give every (entity, role) and cue kind a term id after the packs' and put its spellings in `keys`."""
    roles: dict[int, tuple[int, int]] = {}
    cased: dict[int, set[str]] = {}
    cues: dict[int, int] = {}
    ids: dict[tuple[int, int, str], int] = {}
    for index, role, kind, lang, value in gazetteer.terms:
        key = (index, role, kind)
        term_id = ids.get(key)
        if term_id is None:
            term_id = ids[key] = len(term_names)
            label = gazetteer.entities[index].id if index >= 0 else "cue"
            term_names.append(f"gazetteer.{kind}.{label}.{role}")
            if kind == "cue":
                cues[term_id] = role
            else:
                roles[term_id] = (index, role)
        if role == CASED and kind != "cue":
            # The spelling's all-capital words ("US" of "the US"): one must be so written.
            cased.setdefault(term_id, set()).update(
                w for w in re.split(r"[\s\-]+", value) if w.isupper() and sum(c.isalpha() for c in w) >= 2)
        for form, entry in _key_entries(value, term_id, lang):
            keys.setdefault(form, []).append(entry)
    types = {"country": 0, "system": 1, "person": 2}
    ordered = sorted(range(len(gazetteer.entities)),
                     key=lambda i: (types[gazetteer.entities[i].type], gazetteer.entities[i].id))
    rank = [0] * len(ordered)
    for place, entity in enumerate(ordered):
        rank[entity] = place
    return EntityIndex(entities=gazetteer.entities, roles=roles, rank=tuple(rank),
                       cased={t: frozenset(v) for t, v in cased.items()}, cues=cues,
                       party_topics=gazetteer.party_topics,
                       locatives=frozenset(v for _, v in gazetteer.locatives),
                       directions=frozenset(v for _, v in gazetteer.directions))


_ARABIC = re.compile(r"[\u0600-\u06ff]")


def _key_entries(variant: str, term_id: int, lang: str | None):
    """Automaton keys for one spelling: its normalised form, code variants, Arabic ال-ل contraction.

    A spelling with a wildcard before its last word puts its words up to that wildcard in the
    automaton and the other words in the entry's `tail`, which the scan checks word by word.
    """
    words = _term_words(variant)
    first_word = words[0][0]
    wildcards = [i for i, (_, wildcard) in enumerate(words[:-1]) if wildcard]
    if wildcards:
        # The literal words up to the first wildcard go into the automaton ("в состав" of
        # "в состав* делегаци* вошл*"), so a short first word is not a candidate everywhere.
        split = wildcards[0] + 1
        stem, wildcard, tail = " ".join(word for word, _ in words[:split]), True, tuple(words[split:])
        forms = [stem]
    else:
        wildcard = words[-1][1]
        stem = " ".join(word for word, _ in words)
        tail = ()
        forms = list(code_variants(stem))
    arabic = bool(_ARABIC.match(stem))
    entry = KeyEntry(term_id, lang, wildcard, arabic, tail, letter_suffix=not wildcard and not tail and is_code(stem))
    if arabic and first_word.startswith("ال") and len(first_word) > 3:
        forms.append("لل" + stem[2:])  # ل + الدفاع is written للدفاع
    for form in forms:
        yield form, entry


def _gazetteer_folder(path: Path) -> Path:
    """The watchlist folder whose gazetteer/ a path uses: itself, or a single pack's folder."""
    return path if path.is_dir() else path.parent


def problems(path: str | Path) -> list[ConfigProblem]:
    """Every problem in a watchlist file or folder and its gazetteer (for `newswatch check`); [] when it compiles."""
    parsed, found = _parse_files(Path(path))
    gazetteer, gazetteer_found = load_gazetteer(_gazetteer_folder(Path(path)))
    if gazetteer_found:  # the packs' slots cannot be checked against a broken gazetteer
        return sorted(found + gazetteer_found, key=lambda p: (p.file, p.line or 0, p.column or 0))
    _, more = _compile(parsed, gazetteer)
    return sorted(found + more, key=lambda p: (p.file, p.line or 0, p.column or 0))


def load_watchlists(path: str | Path, *, entities: bool = True) -> Watchlist:
    """Load and compile every pack in `path` (a folder of *.yaml, or one file) with the gazetteer in
    its gazetteer/ folder, if any (`entities=False` uses the gazetteer for slots only: no entities).

    Raises ConfigError listing every problem with file:line; the same files always give
    the same `version`.
    """
    parsed, found = _parse_files(Path(path))
    gazetteer, gazetteer_found = load_gazetteer(_gazetteer_folder(Path(path)))
    if gazetteer_found:
        raise ConfigError(sorted(found + gazetteer_found, key=lambda p: (p.file, p.line or 0, p.column or 0)))
    watchlist, more = _compile(parsed, gazetteer, entities)
    if found or more:
        raise ConfigError(sorted(found + more, key=lambda p: (p.file, p.line or 0, p.column or 0)))
    return watchlist
