"""Native bodies for chat tools: Slack (Block Kit), Discord (embeds), Microsoft Teams (Adaptive Card).

Each carries the same facts as the JSON alert: title and link, source, time, language, topics
with severity/score and an evidence snippet, story id and number of sources. Right-to-left text
(Arabic...) is passed through untouched and wrapped in Unicode first-strong isolates so it does
not scramble the left-to-right labels around it; Teams cards also get `rtl: true`.
"""

from __future__ import annotations

from typing import Any, Callable

from alerts.payload import DigestPayload, WebhookBody, cut
from newswatch.schemas import AlertPayload

RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur", "ps", "yi", "ckb", "sd"})
FSI, PDI = "\u2068", "\u2069"  # first-strong isolate / pop directional isolate


def isolate(text: str) -> str:
    """Bidi-isolate a piece of user text (its own direction, without disturbing the line around it)."""
    return f"{FSI}{text}{PDI}" if text else text


def is_rtl(lang: str | None) -> bool:
    return (lang or "").split("-")[0].lower() in RTL_LANGUAGES


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _topic_lines(alert: AlertPayload) -> list[str]:
    lines = []
    for hit in alert.topics:
        line = f"{hit.title} ({hit.severity}, score {hit.score:.2f})"
        if hit.evidence:
            line += f": “{isolate(cut(hit.evidence[0].snippet, 200)[0] or '')}”"
        lines.append(line)
    return lines


def _source_names(alert: AlertPayload) -> str:
    names = sorted({s.source for s in alert.sources if s.source})
    return ", ".join(names) if names else "-"


def _facts(alert: AlertPayload) -> list[tuple[str, str]]:
    article = alert.article
    return [("Source", isolate(article.get("source") or "-")),
            ("Published", article.get("published_at") or "-"),
            ("Language", article.get("lang") or "unknown"),
            ("Sources", f"{alert.sources_count}: {_source_names(alert)}"),
            ("Story", alert.story_id)] + _entity_facts(alert)


def _entity_facts(alert: AlertPayload) -> list[tuple[str, str]]:
    """Countries, systems and an arms deal's sides, when the match has them (the gazetteer's)."""
    facts = []
    for kind, label in (("country", "Countries"), ("system", "Systems")):
        ids = [e.id for e in alert.entities if e.type == kind]
        if ids:
            facts.append((label, ", ".join(ids)))
    if alert.parties is not None:
        facts.append(("Deal", f"{alert.parties.supplier} → {alert.parties.recipient}"))
    return facts


def _headline(alert: AlertPayload) -> str:
    prefix = "Update: " if alert.reason == "changed" else ""
    return prefix + isolate(alert.article.get("title") or "(untitled)")


def _digest_lines(digest: DigestPayload) -> list[str]:
    return [f"{isolate(item.title)} ({', '.join(item.topics)}; {item.sources_count} sources)"
            + (f" {item.url}" if item.url else "") for item in digest.alerts]


def slack(body: WebhookBody) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` fallback plus Block Kit blocks."""
    if isinstance(body, DigestPayload):
        text = f"newswatch digest: {body.count} alerts held by the throttle"
        lines = "\n".join(f"• {_slack_escape(line)}" for line in _digest_lines(body))
        return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*\n{lines}"[:3000]}}]}
    url = body.article.get("url")
    title = _slack_escape(_headline(body))
    heading = f"*<{url}|{title}>*" if url else f"*{title}*"
    topics = "\n".join(f"• {_slack_escape(line)}" for line in _topic_lines(body))
    fields = [{"type": "mrkdwn", "text": f"*{name}*\n{_slack_escape(value)}"[:2000]} for name, value in _facts(body)]
    return {"text": _headline(body),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{heading}\n{topics}"[:3000]}},
                       {"type": "section", "fields": fields[:10]},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text": f"newswatch · {body.id}"}]}]}


def discord(body: WebhookBody) -> dict[str, Any]:
    """A Discord webhook message with one embed (limits: title 256, description 4096, field 1024)."""
    if isinstance(body, DigestPayload):
        return {"content": f"newswatch digest: {body.count} alerts held by the throttle",
                "embeds": [{"description": "\n".join(_digest_lines(body))[:4096]}],
                "allowed_mentions": {"parse": []}}
    embed: dict[str, Any] = {
        "title": cut(_headline(body), 256)[0],
        "description": "\n".join(_topic_lines(body))[:4096],
        "fields": [{"name": name, "value": (value or "-")[:1024], "inline": name != "Sources"}
                   for name, value in _facts(body)],
        "footer": {"text": f"newswatch · {body.id}"},
        "timestamp": body.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if body.article.get("url"):
        embed["url"] = body.article["url"]
    # Mentions are parsed from nothing: a headline must never ping @everyone.
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}


def teams(body: WebhookBody) -> dict[str, Any]:
    """A Teams (Workflows / incoming webhook) message carrying an Adaptive Card 1.5."""
    if isinstance(body, DigestPayload):
        blocks = [{"type": "TextBlock", "text": f"newswatch digest: {body.count} alerts", "weight": "Bolder"}]
        blocks += [{"type": "TextBlock", "text": line, "wrap": True} for line in _digest_lines(body)]
        return _teams_card(blocks, [], rtl=False)
    rtl = is_rtl(body.article.get("lang"))
    blocks = [{"type": "TextBlock", "text": _headline(body), "weight": "Bolder", "size": "Medium", "wrap": True},
              {"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in _facts(body)]}]
    blocks += [{"type": "TextBlock", "text": line, "wrap": True} for line in _topic_lines(body)]
    actions = [{"type": "Action.OpenUrl", "title": "Open article", "url": body.article["url"]}] \
        if body.article.get("url") else []
    return _teams_card(blocks, actions, rtl=rtl)


def _teams_card(blocks: list, actions: list, *, rtl: bool) -> dict[str, Any]:
    card = {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.5", "rtl": rtl, "body": [{"type": "Container", "rtl": rtl, "items": blocks}]}
    if actions:
        card["actions"] = actions
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}


FORMATTERS: dict[str, Callable[[WebhookBody], dict[str, Any]]] = {"slack": slack, "discord": discord, "teams": teams}
