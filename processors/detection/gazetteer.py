"""The gazetteer: countries, weapon systems and office holders, as YAML shipped with the packs.

It lives in the `gazetteer/` folder inside the watchlist folder (seeds/watchlists/gazetteer/), is
validated as strictly as the packs (every problem with file:line) and is compiled into the SAME
automaton as the packs, so entities cost no second scan (watchlist.py adds its spellings, engine.py
reads their hits). It also gives watchlist terms their slots: `глав* {country.adj} МИД*` stands for
one spelling per country adjective. The format is documented in docs/detection.md.

Country codes are ISO 3166 alpha-2 and are checked against the CLDR territory list that Babel
ships in its wheel; each country's CLDR name in English, Arabic and Russian is one of its names
unless the file marks that name as weak. Everything else (inflected forms, adjectives, capitals used
as metonyms, exclusions) is written in the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from newswatch.errors import ConfigError, ConfigProblem
from newswatch.yamlconf import StrictModel, parse_yaml, position_of, problems_from_validation
from processors.detection.normalize import normalize_term

GAZETTEER_DIR = "gazetteer"  # the folder inside a watchlist folder
LANGS = ("ar", "en", "ru")

# Term roles (what a hit of a gazetteer term means for its entity).
STRONG, WEAK, EXCLUDE, CASED = 0, 1, 2, 3
# Arms-deal cue kinds: the subject of a supply verb is the supplier, that of an acquire verb the recipient.
SUPPLY, ACQUIRE = 0, 1

# Arabic nisba adjectives take these endings (ة is normalised to ه); "مصري" gives مصرية, مصريين...
_NISBA_ENDINGS = ("", "ة", "ين", "ون", "ان", "تين", "تان")

_PERSON_ID = r"^[a-z][a-z0-9_]*$"


def _spelling(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a spelling must be a string")
    if not normalize_term(value.replace("*", "")):
        raise ValueError(f"{value!r}: empty spelling (nothing left after normalisation)")
    if "{" in value or "}" in value:
        raise ValueError(f"{value!r}: braces are for slots in watchlist terms, not gazetteer spellings")
    for word in normalize_term(value).split(" "):
        stem = word.removesuffix("*")
        if "*" in stem:
            raise ValueError(f"{value!r}: '*' is only allowed at the end of a word (suffix wildcard)")
        if word.endswith("*") and sum(c.isalnum() for c in stem) < 3:
            raise ValueError(f"{value!r}: a wildcard needs at least 3 letters before '*'")
    return value


Spelling = Annotated[pydantic.StrictStr, pydantic.AfterValidator(_spelling)]


class Forms(StrictModel):
    """Spellings per language; `any` for script-independent ones (model codes)."""

    any: tuple[Spelling, ...] = ()
    ar: tuple[Spelling, ...] = ()
    en: tuple[Spelling, ...] = ()
    ru: tuple[Spelling, ...] = ()

    def items(self):
        for lang in ("any",) + LANGS:
            for value in getattr(self, lang):
                yield (None if lang == "any" else lang), value


class CountrySpec(StrictModel):
    """One country: its ISO code, names, capitals used for the state, adjectives and demonyms."""

    id: str = pydantic.Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2")
    name: str = ""  # English display name; default the CLDR one
    names: Forms = Forms()
    weak: Forms = Forms()  # names that count only beside a strong form ("Georgia", "Jordan")
    cased: Forms = Forms()  # names that count only written exactly so ("US", "UK")
    capitals: Forms = Forms()
    adjectives: Forms = Forms()
    weak_adjectives: Forms = Forms()  # adjectives of two countries ("корейский"): weak, like `weak`
    demonyms: Forms = Forms()
    exclude: Forms = Forms()  # phrases holding a form that are not the country ("Turkish delight")
    cldr_names: bool = True


class SystemSpec(StrictModel):
    """One weapon system under its canonical name (`S-400`)."""

    id: str = pydantic.Field(min_length=1, description="the canonical name")
    names: Forms
    exclude: Forms = Forms()

    @pydantic.model_validator(mode="after")
    def _has_names(self) -> "SystemSpec":
        if not any(True for _ in self.names.items()):
            raise ValueError("a system needs at least one spelling under names")
        return self


Office = Literal["foreign minister", "defence minister", "president", "prime minister",
                 "security council secretary"]


class OfficeSpec(StrictModel):
    office: Office
    country: str = pydantic.Field(pattern=r"^[A-Z]{2}$")
    start: date = pydantic.Field(alias="from")
    end: date | None = pydantic.Field(default=None, alias="to")  # None: still in office

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "OfficeSpec":
        if self.end is not None and self.end < self.start:
            raise ValueError("`to` is before `from`")
        return self


class PersonSpec(StrictModel):
    id: str = pydantic.Field(pattern=_PERSON_ID)
    name: str = pydantic.Field(min_length=1)
    names: Forms
    exclude: Forms = Forms()
    offices: tuple[OfficeSpec, ...] = pydantic.Field(min_length=1)


class DealCues(StrictModel):
    """Verbs and nouns that say which way arms go, for `parties` on the topics listed."""

    topics: tuple[str, ...] = pydantic.Field(min_length=1)
    supply: Forms
    acquire: Forms
    # Words before a country that make it a place ("in Moscow"), never a party.
    locative: Forms = Forms()
    # Words before a country that mark it as the other side ("from Russia"): such a counterpart
    # may be further from its cue.
    direction: Forms = Forms()


class GazetteerFile(StrictModel):
    countries: tuple[CountrySpec, ...] = ()
    systems: tuple[SystemSpec, ...] = ()
    persons: tuple[PersonSpec, ...] = ()
    deal_cues: DealCues | None = None


# --- the compiled form -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OfficeTerm:
    office: str
    country: str
    start: date
    end: date | None


@dataclass(frozen=True, slots=True)
class EntityInfo:
    type: str  # country | system | person
    id: str
    name: str
    offices: tuple[OfficeTerm, ...] = ()

    def office_at(self, day: date | None) -> OfficeTerm | None:
        """The office held on `day` (the latest one when `day` is None); None when none was."""
        if not self.offices:
            return None
        if day is None:
            return max(self.offices, key=lambda o: (o.end is None, o.end or o.start, o.start))
        held = [o for o in self.offices if o.start <= day and (o.end is None or day < o.end)]
        return max(held, key=lambda o: o.start) if held else None


@dataclass(frozen=True)
class Gazetteer:
    """The validated gazetteer: entities, the spellings to put in the automaton and the slot classes.

    `terms` are (entity index or None for cues, role or cue kind, kind, language, spelling) rows;
    `classes[(class, lang)]` are the spellings a slot `{class}` stands for in that language.
    """

    entities: tuple[EntityInfo, ...]
    terms: tuple[tuple[int, int, str, str | None, str], ...]
    classes: dict[tuple[str, str | None], tuple[str, ...]]
    party_topics: frozenset[str]
    locatives: tuple[tuple[str | None, str], ...]
    sources: tuple[tuple[str, str], ...]  # (file name, text) for the watchlist version
    directions: tuple[tuple[str | None, str], ...] = ()

    def countries(self) -> frozenset[str]:
        return frozenset(e.id for e in self.entities if e.type == "country")

    def systems(self) -> frozenset[str]:
        return frozenset(e.id for e in self.entities if e.type == "system")


SLOT_CLASSES = ("country.name", "country.adj", "country.demonym", "country.capital", "system.name", "person.name")


@lru_cache(maxsize=1)
def cldr_territories() -> dict[str, dict[str, str]]:
    """ISO 3166 alpha-2 code -> {lang: CLDR name} for en, ar and ru, from the data inside Babel's wheel."""
    from babel import Locale

    names = {lang: Locale(lang).territories for lang in LANGS}
    return {code: {lang: names[lang][code] for lang in LANGS if code in names[lang]}
            for code in names["en"] if re.fullmatch(r"[A-Z]{2}", code) and code not in ("ZZ", "QO", "EU", "EZ", "UN")}


def nisba_forms(adjective: str) -> tuple[str, ...]:
    """An Arabic nisba adjective (مصري) with its feminine, plural and dual forms; other words as they are.
    Proclitics (ال و ب ...) need no listing: the matcher accepts them before any Arabic term."""
    if adjective.endswith("*") or not adjective.endswith("ي") or " " in adjective.strip():
        return (adjective,)
    return tuple(adjective + ending for ending in _NISBA_ENDINGS)


def _expand(forms: Forms, nisba: bool = False) -> list[tuple[str | None, str]]:
    out = []
    for lang, value in forms.items():
        values = nisba_forms(value) if nisba and lang == "ar" else (value,)
        out.extend((lang, v) for v in values)
    return out


def gazetteer_files(folder: Path) -> list[Path]:
    base = folder / GAZETTEER_DIR
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))


def load_gazetteer(folder: Path) -> tuple[Gazetteer | None, list[ConfigProblem]]:
    """The gazetteer in `folder/gazetteer/` (None when there is none), and every problem found."""
    files = gazetteer_files(folder)
    if not files:
        return None, []
    problems: list[ConfigProblem] = []
    parsed: list[tuple[str, str, GazetteerFile, dict]] = []
    for file in files:
        source = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(ConfigProblem(source, None, None, "", f"cannot read: {exc}"))
            continue
        try:
            data, positions = parse_yaml(text, source)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        try:
            model = GazetteerFile.model_validate(data if data is not None else {})
        except pydantic.ValidationError as exc:
            problems.extend(problems_from_validation(exc, source, positions))
            continue
        parsed.append((source, text, model, positions))
    if problems:
        return None, problems
    return _compile(parsed)


def _compile(parsed: list[tuple[str, str, GazetteerFile, dict]]) -> tuple[Gazetteer | None, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    territories = cldr_territories()

    def problem(source: str, positions: dict, loc: tuple, message: str) -> None:
        pos = position_of(positions, loc)
        problems.append(ConfigProblem(source, pos[0] if pos else None, pos[1] if pos else None,
                                      ".".join(str(p) for p in loc), message))

    entities: list[EntityInfo] = []
    terms: list[tuple[int, int, str, str | None, str]] = []
    classes: dict[tuple[str, str | None], list[str]] = {}
    seen: dict[tuple[str, str], str] = {}
    party_topics: frozenset[str] = frozenset()
    locatives: list[tuple[str | None, str]] = []
    directions: list[tuple[str | None, str]] = []
    cues_at: str | None = None

    def add_class(name: str, rows: list[tuple[str | None, str]]) -> None:
        for lang, value in rows:
            classes.setdefault((name, lang), []).append(value)

    def first(kind: str, ident: str, source: str, positions: dict, loc: tuple) -> bool:
        where = seen.get((kind, ident))
        if where is not None:
            problem(source, positions, loc, f"duplicate {kind} {ident!r} (first defined in {where})")
            return False
        seen[(kind, ident)] = source
        return True

    for source, _, model, positions in parsed:
        for i, country in enumerate(model.countries):
            loc = ("countries", i, "id")
            if country.id not in territories:
                problem(source, positions, loc, f"{country.id!r} is not an ISO 3166 alpha-2 country code")
                continue
            if not first("country", country.id, source, positions, loc):
                continue
            index = len(entities)
            cldr = territories[country.id]
            entities.append(EntityInfo("country", country.id, country.name or cldr.get("en", country.id)))
            names = _expand(country.names)
            weak = _expand(country.weak)
            weak_keys = {(lang, normalize_term(v)) for lang, v in weak}
            if country.cldr_names:
                names += [(lang, cldr[lang]) for lang in LANGS
                          if lang in cldr and (lang, normalize_term(cldr[lang])) not in weak_keys]
            adjectives = _expand(country.adjectives, nisba=True)
            weak_adjectives = _expand(country.weak_adjectives, nisba=True)
            demonyms = _expand(country.demonyms, nisba=True)
            capitals = _expand(country.capitals)
            for rows, role in ((names + adjectives + demonyms + capitals, STRONG), (weak + weak_adjectives, WEAK),
                               (_expand(country.exclude), EXCLUDE), (_expand(country.cased), CASED)):
                terms.extend((index, role, "country", lang, value) for lang, value in dict.fromkeys(rows))
            add_class("country.name", names + weak)
            add_class("country.adj", adjectives + weak_adjectives)
            add_class("country.demonym", demonyms)
            add_class("country.capital", capitals)
        for i, system in enumerate(model.systems):
            if not first("system", system.id, source, positions, ("systems", i, "id")):
                continue
            index = len(entities)
            entities.append(EntityInfo("system", system.id, system.id))
            names = _expand(system.names)
            terms.extend((index, STRONG, "system", lang, value) for lang, value in names)
            terms.extend((index, EXCLUDE, "system", lang, value) for lang, value in _expand(system.exclude))
            add_class("system.name", names)
        for i, person in enumerate(model.persons):
            if not first("person", person.id, source, positions, ("persons", i, "id")):
                continue
            for k, office in enumerate(person.offices):
                if office.country not in territories:
                    problem(source, positions, ("persons", i, "offices", k, "country"),
                            f"{office.country!r} is not an ISO 3166 alpha-2 country code")
            index = len(entities)
            entities.append(EntityInfo("person", person.id, person.name, tuple(
                OfficeTerm(o.office, o.country, o.start, o.end) for o in person.offices)))
            names = _expand(person.names)
            terms.extend((index, STRONG, "person", lang, value) for lang, value in names)
            terms.extend((index, EXCLUDE, "person", lang, value) for lang, value in _expand(person.exclude))
            add_class("person.name", names)
        if model.deal_cues is not None:
            if cues_at is not None:
                problem(source, positions, ("deal_cues",), f"deal_cues are already given in {cues_at}")
                continue
            cues_at = source
            party_topics = frozenset(model.deal_cues.topics)
            terms.extend((-1, SUPPLY, "cue", lang, value) for lang, value in _expand(model.deal_cues.supply))
            terms.extend((-1, ACQUIRE, "cue", lang, value) for lang, value in _expand(model.deal_cues.acquire))
            locatives = [(lang, normalize_term(value)) for lang, value in model.deal_cues.locative.items()]
            directions = [(lang, normalize_term(value)) for lang, value in model.deal_cues.direction.items()]
    if problems:
        return None, problems
    return Gazetteer(
        entities=tuple(entities), terms=tuple(terms),
        classes={key: tuple(dict.fromkeys(values)) for key, values in classes.items()},
        party_topics=party_topics, locatives=tuple(locatives), directions=tuple(directions),
        sources=tuple((Path(source).name, text) for source, text, _, _ in parsed),
    ), []


_SLOT = re.compile(r"\{([^{}]*)\}")


def slots_in(spelling: str) -> list[str]:
    """The slot names in a watchlist spelling (`глав* {country.adj} МИД*` -> ["country.adj"])."""
    return [m.strip() for m in _SLOT.findall(spelling)]


def fill_slots(spelling: str, lang: str | None, lookup) -> list[str]:
    """Every spelling a term with slots stands for: each slot replaced by each spelling `lookup(name,
    lang)` gives (a tuple; raises KeyError for an unknown name). Several slots multiply."""
    match = _SLOT.search(spelling)
    if match is None:
        return [spelling]
    head, tail = spelling[:match.start()], spelling[match.end():]
    out = []
    for value in lookup(match.group(1).strip(), lang):
        out.extend(fill_slots(head + value + tail, lang, lookup))
    return out


def country_codes(folder: Path) -> frozenset[str] | None:
    """The country codes of the gazetteer in watchlist folder `folder` (None when it has none or is broken)."""
    gazetteer, found = load_gazetteer(folder)
    return None if gazetteer is None or found else gazetteer.countries()


def system_ids(folder: Path) -> frozenset[str] | None:
    gazetteer, found = load_gazetteer(folder)
    return None if gazetteer is None or found else gazetteer.systems()


@dataclass(frozen=True)
class EntityIndex:
    """What the engine needs to turn gazetteer hits into entities: term id -> meaning."""

    entities: tuple[EntityInfo, ...]
    roles: dict[int, tuple[int, int]]  # term id -> (entity index, STRONG/WEAK/EXCLUDE/CASED)
    cased: dict[int, frozenset[str]]  # CASED term id -> the upper-case words one of which must be there
    cues: dict[int, int]  # term id -> SUPPLY / ACQUIRE
    party_topics: frozenset[str]
    locatives: frozenset[str]  # normalised words that make the next country a place
    rank: tuple[int, ...] = ()  # entity index -> its place in the output order (type, then id)
    directions: frozenset[str] = frozenset()  # normalised words that mark the other side of a deal
