"""The docs stand alone: every relative link in README.md and docs/ resolves, no absolute path of
somebody's machine appears in them, and docs/contracts.md names the topics and record kinds the
code uses. Pure: reads files only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alerts.dispatcher import state_topic
from alerts.records import ALERT_DEAD_LETTER_SCHEMA, PENDING_SCHEMA
from newswatch import schemas
from newswatch.kafka_settings import Topics
from processors.candidates import CANDIDATE_SCHEMA

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CONTRACTS = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
# Paths that only exist on some machine (a home folder, the build box, a temp folder). The README's
# sample output uses /home/you/ as its placeholder; /etc/newswatch and /var/lib/newswatch are the
# container's own paths.
_MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:work|root|tmp|Users|mnt|builds)/[\w.-]+|(?<![\w.~/-])/home/(?!you/)[\w.-]+")


def _links(path: Path) -> list[tuple[int, str]]:
    found = []
    in_code = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        for match in _LINK.finditer(line):
            found.append((number, match.group(1) or match.group(2)))
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines()
            if re.match(r"^#{1,6} ", line)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc):
    broken = []
    for line, target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.exists():
            broken.append(f"{doc.name}:{line}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{doc.name}:{line}: {target} (no heading #{anchor})")
        elif REPO not in resolved.parents and resolved != REPO:
            broken.append(f"{doc.name}:{line}: {target} (outside the repository)")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_path_of_a_machine_or_the_project_notes(doc):
    text = doc.read_text(encoding="utf-8")
    found = [f"{doc.name}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}" for m in _MACHINE_PATH.finditer(text)]
    assert not found, "\n".join(found)
    assert "DESIGN.md" not in text, f"{doc.name} points to notes outside the repository"


def test_the_link_checker_finds_broken_links_and_machine_paths(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("# Title\n[a](missing.md) [b](x.md#title) [c](#nope) [d](https://example.org/)\n"
                   "see /work/shared/DESIGN.md and /home/alice/x, not /home/you/x or ~/.cache\n")
    assert [t for _, t in _links(doc)] == ["missing.md", "x.md#title", "#nope", "https://example.org/"]
    assert "title" in _anchors(doc)
    assert [m.group(0) for m in _MACHINE_PATH.finditer(doc.read_text())] == ["/work/shared", "/home/alice"]


def test_the_readme_links_the_contracts():
    assert "](docs/contracts.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_contracts_name_every_topic_the_code_uses():
    topics = Topics("<prefix>")
    names = {topics.articles, topics.candidates, topics.matches, topics.articles_dlq, topics.alerts_dlq,
             state_topic(topics)}
    table = {m.group(1) for m in re.finditer(r"^\| `(<prefix>[\w.]+)` \|", CONTRACTS, re.M)}
    assert table == names


def test_contracts_name_every_record_kind_and_version_the_code_uses():
    kinds = {schemas.ARTICLE_SCHEMA, schemas.MATCH_SCHEMA, schemas.DEAD_LETTER_SCHEMA, CANDIDATE_SCHEMA,
             PENDING_SCHEMA, ALERT_DEAD_LETTER_SCHEMA}
    table = {m.group(1) for m in re.finditer(r"^\| `(newswatch\.[a-z_]+/v\d+)` \|", CONTRACTS, re.M)}
    assert table == kinds
    assert f'"type": "{schemas.ALERT_TYPE}", "version": {schemas.ALERT_VERSION}' in CONTRACTS


def test_contracts_list_the_fields_of_each_record():
    from alerts.records import AlertDeadLetter, PendingDelivery
    from processors.candidates import Candidate

    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(newswatch\.[a-z_]+/v\d+)` \| [^|]+ \| (.*) \|$",
                                                        CONTRACTS, re.M)}
    for model in (schemas.Article, schemas.DeadLetter, Candidate, PendingDelivery):
        fields = {name for name in model.model_fields if name != "schema_"}
        missing = {name for name in fields if f"`{name}" not in rows[model.SCHEMA]}
        assert not missing, f"{model.SCHEMA}: {missing}"
    match_only = set(schemas.Match.model_fields) - set(schemas.ArticleFields.model_fields) - {"schema_"}
    assert all(f"`{name}`" in rows[schemas.MATCH_SCHEMA] for name in match_only)
    dead_only = set(AlertDeadLetter.model_fields) - set(PendingDelivery.model_fields)
    assert all(f"`{name}`" in rows[ALERT_DEAD_LETTER_SCHEMA] for name in dead_only)
