"""The console's web application: server-rendered pages and the JSON API they share.

FastAPI (on Starlette) because it gives typed query and form parameters and an OpenAPI
description of the JSON API without hand-written schema, runs on uvicorn, and is widely used and
maintained; the pages are Jinja2 templates with autoescape on, so every field from an article,
a feed or a delivery is escaped. The only script is console/static/console.js (no inline script:
the Content-Security-Policy forbids it).

Routes: pages at /stories, /stories/{id}, /feeds, /test, /alerts; the JSON API under /api/...
(the same data; /api/stories/stream is the live feed the stories page listens to, as SSE);
/openapi.json and /docs describe the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from console import render, security
from console.store import Store, StoryFilter
from console.tester import LiveWatchlists, fetch_text, run_draft, test_text
from newswatch.logs import log_event

HERE = Path(__file__).resolve().parent
log = logging.getLogger("newswatch.console")
STREAM_KEEPALIVE_S = 15.0


@dataclass
class ConsoleContext:
    """Everything the routes need, built by the CLI (or a test)."""

    store: Store
    token: str | None
    watchlists: LiveWatchlists
    subscriptions_path: Path | None = None
    config_path: Path | None = None
    draft_history: int = 50_000
    ingest_settings: Any = None  # how the tester fetches a pasted URL (ingest's guarded fetch)
    feeder: Any = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self, stories: set[str] | None = None) -> None:
        event, self.changed = self.changed, asyncio.Event()
        event.set()


def now_ms() -> int:
    return int(time.time() * 1000)


class TestIn(BaseModel):
    text: str = ""
    url: str | None = None  # read through ingest's guarded fetch when no text is given
    title: str = ""
    lang: str | None = None


class DraftIn(BaseModel):
    yaml: str


def create_app(ctx: ConsoleContext) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = asyncio.Event()
        task = asyncio.create_task(ctx.feeder.run(stop)) if ctx.feeder is not None else None
        try:
            yield
        finally:
            stop.set()
            ctx.notify()
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, timeout=10)

    app = FastAPI(title="newswatch console", version="1", lifespan=lifespan,
                  description="What newswatch caught, why, and what it sent. Every page has a JSON twin under /api.")
    app.state.ctx = ctx
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.autoescape = True
    templates.env.globals.update(when=render.when, direction=render.direction, field_segments=render.field_segments)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        if not path.startswith(security.OPEN_PATHS) and not security.authorised(
                ctx.token, request.headers.get("authorization"), request.cookies.get(security.SESSION_COOKIE)):
            if "text/html" in request.headers.get("accept", ""):
                response = templates.TemplateResponse(request, "login.html", {"csrf": _csrf(request), "failed": False},
                                                      status_code=401)
            else:
                response = JSONResponse({"detail": "a token is needed: Authorization: Bearer <token>"}, status_code=401)
            response.headers["www-authenticate"] = "Bearer"
        elif _unsafe(request) and not security.same_origin(
                request.headers.get("origin"), request.headers.get("sec-fetch-site"), request.headers.get("host")):
            response = JSONResponse({"detail": "cross-site change refused"}, status_code=403)
        else:
            response = await call_next(request)
        for name, value in security.HEADERS.items():
            response.headers[name] = value
        if not request.cookies.get(security.CSRF_COOKIE):
            response.set_cookie(security.CSRF_COOKIE, request.state.csrf if hasattr(request.state, "csrf")
                                else security.new_csrf(), httponly=True, samesite="strict")
        return response

    def _csrf(request: Request) -> str:
        token = request.cookies.get(security.CSRF_COOKIE)
        if not token:
            token = getattr(request.state, "csrf", None) or security.new_csrf()
            request.state.csrf = token
        return token

    async def csrf_guard(request: Request) -> None:
        """Every change needs the CSRF token (form field or header) matching its cookie; runs as a
        dependency so the form is parsed once, by FastAPI, and still reaches the route."""
        if _unsafe(request) and not await _csrf_passes(request):
            raise HTTPException(403, "change refused: missing or wrong CSRF token (reload the page)")

    app.router.dependencies.append(Depends(csrf_guard))

    async def _csrf_passes(request: Request) -> bool:
        submitted = request.headers.get(security.CSRF_HEADER)
        if submitted is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            submitted = (await request.form()).get(security.CSRF_FIELD)
        return security.csrf_ok(request.cookies.get(security.CSRF_COOKIE), submitted)

    def page(request: Request, name: str, status: int = 200, **values) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"csrf": _csrf(request), "token_required": ctx.token is not None,
                                                          **values}, status_code=status)

    # --- login ------------------------------------------------------------------------------

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request):
        return page(request, "login.html", failed=False)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: str = Form(""), csrf_token: str = Form("")):
        if ctx.token is None:
            return RedirectResponse("/stories", status_code=303)
        if not security.authorised(ctx.token, f"Bearer {token}", None):
            return page(request, "login.html", status=401, failed=True)
        response = RedirectResponse("/stories", status_code=303)
        response.set_cookie(security.SESSION_COOKIE, security.session_value(ctx.token), httponly=True,
                            samesite="strict", max_age=12 * 3600)
        return response

    # --- stories ----------------------------------------------------------------------------

    def story_filter(topic, lang, source, min_score, since, until, q, limit) -> StoryFilter:
        try:
            score = float(min_score) if min_score not in (None, "") else None
            return StoryFilter(topic=topic or None, lang=lang or None, source=source or None, min_score=score,
                               since_ms=render.parse_time(since), until_ms=render.parse_time(until), q=q or None,
                               limit=limit)
        except ValueError:
            raise HTTPException(422, "min_score must be a number, since/until ISO-8601 dates or times") from None

    filters = dict(topic=Query(None), lang=Query(None), source=Query(None), min_score=Query(None, description="a number; empty means any"),
                   since=Query(None, description="ISO-8601, UTC unless given"), until=Query(None),
                   q=Query(None, description="full-text search, normalised as the detector normalises"),
                   limit=Query(50, ge=1, le=500))

    @app.get("/", include_in_schema=False)
    def home():
        return RedirectResponse("/stories", status_code=303)

    @app.get("/stories", include_in_schema=False)
    def stories_page(request: Request, topic: str | None = filters["topic"], lang: str | None = filters["lang"],
                     source: str | None = filters["source"], min_score: str | None = filters["min_score"],
                     since: str | None = filters["since"], until: str | None = filters["until"],
                     q: str | None = filters["q"], limit: int = filters["limit"]):
        f = story_filter(topic, lang, source, min_score, since, until, q, limit)
        rows = ctx.store.stories(f)
        if _wants_json(request):
            return {"stories": rows, "seq": ctx.store.seq}
        return page(request, "stories.html", stories=rows, f=f, since=since or "", until=until or "",
                    seq=ctx.store.seq, query=request.url.query)

    @app.get("/api/stories", tags=["stories"], summary="Stories, newest first, filtered")
    def stories_api(topic: str | None = filters["topic"], lang: str | None = filters["lang"],
                    source: str | None = filters["source"], min_score: str | None = filters["min_score"],
                    since: str | None = filters["since"], until: str | None = filters["until"],
                    q: str | None = filters["q"], limit: int = filters["limit"]) -> dict:
        rows = ctx.store.stories(story_filter(topic, lang, source, min_score, since, until, q, limit))
        return {"stories": rows, "seq": ctx.store.seq}

    @app.get("/api/stories/stream", tags=["stories"], summary="Server-sent events: stories as they change",
             response_class=StreamingResponse)
    async def stories_stream(request: Request, after: int = Query(0, ge=0),
                             topic: str | None = filters["topic"], lang: str | None = filters["lang"],
                             source: str | None = filters["source"], min_score: str | None = filters["min_score"],
                             since: str | None = filters["since"], until: str | None = filters["until"],
                             q: str | None = filters["q"]):
        f = story_filter(topic, lang, source, min_score, since, until, q, 200)
        row_template = templates.env.get_template("story_row.html")

        async def events():
            cursor = after
            yield ": connected\n\n"
            while not await request.is_disconnected():
                waiting = ctx.changed
                rows = await asyncio.to_thread(ctx.store.stories, f, cursor)
                for row in reversed(rows):
                    cursor = max(cursor, row["seq"])
                    html = row_template.render(s=row, when=render.when)
                    yield f"event: story\ndata: {json.dumps({'story': row, 'html': html}, ensure_ascii=False)}\n\n"
                try:
                    await asyncio.wait_for(waiting.wait(), timeout=STREAM_KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    @app.get("/stories/{story_id}", include_in_schema=False)
    def story_page(request: Request, story_id: str):
        story = ctx.store.story(story_id)
        if _wants_json(request):
            return story_api(story_id)
        if story is None:
            return page(request, "missing.html", status=404, what="story", name=story_id)
        return page(request, "story.html", s=story)

    @app.get("/api/stories/{story_id}", tags=["stories"], summary="One story: sources, topics with evidence, alerts")
    def story_api(story_id: str) -> dict:
        story = ctx.store.story(story_id)
        if story is None:
            raise HTTPException(404, "no such story in the console's store")
        return story

    # --- feeds ------------------------------------------------------------------------------

    @app.get("/feeds", include_in_schema=False)
    def feeds_page(request: Request):
        if _wants_json(request):
            return feeds_api()
        return page(request, "feeds.html", feeds=ctx.store.feeds(now_ms()))

    @app.get("/api/feeds", tags=["feeds"], summary="Every feed's latest health, failing first")
    def feeds_api() -> dict:
        return {"feeds": ctx.store.feeds(now_ms())}

    # --- rule tester ------------------------------------------------------------------------

    def live():
        watchlist = ctx.watchlists.get()
        if watchlist is None:
            raise HTTPException(503, f"no live watchlists: {ctx.watchlists.error or 'none configured'}")
        return watchlist

    @app.get("/test", include_in_schema=False)
    def test_page(request: Request):
        return page(request, "test.html", result=None, draft=None, text="", title="", yaml="", url="",
                    fetch_error=None)

    async def read_url(url: str) -> tuple[str, str]:
        from ingest.settings import IngestSettings

        try:
            return await fetch_text(url.strip(), ctx.ingest_settings or IngestSettings())
        except ValueError as exc:
            raise HTTPException(422, f"the page could not be read: {exc}") from None

    @app.post("/test", include_in_schema=False)
    async def test_form(request: Request, text: str = Form(""), title: str = Form(""), lang: str = Form(""),
                        url: str = Form("")):
        fetched = None
        if url.strip() and not text.strip():
            try:
                title, text = await read_url(url)
            except HTTPException as exc:
                fetched = exc.detail
        result = None if fetched else await asyncio.to_thread(test_text, live(), title, text, lang or None)
        return page(request, "test.html", result=result, draft=None, text=text, title=title, yaml="", url=url,
                    fetch_error=fetched)

    @app.post("/test/pack", include_in_schema=False)
    def draft_form(request: Request, yaml: str = Form("")):
        draft = run_draft(yaml, ctx.store.history(ctx.draft_history))
        return page(request, "test.html", result=None, draft=draft, text="", title="", yaml=yaml, url="",
                    fetch_error=None)

    @app.post("/api/test", tags=["test"], summary="Topics, rules and evidence for a text (or a page's URL) "
                                                  "under the live packs")
    async def test_api(body: TestIn) -> dict:
        title, text = body.title, body.text
        if body.url and not text.strip():
            title, text = await read_url(body.url)
        return await asyncio.to_thread(test_text, live(), title, text, body.lang)

    @app.post("/api/test/pack", tags=["test"], summary="A draft pack over stored history: added and dropped")
    def draft_api(body: DraftIn) -> dict:
        draft = run_draft(body.yaml, ctx.store.history(ctx.draft_history))
        return {"problems": draft.problems, "topics": draft.topics, "scanned": draft.scanned}

    # --- alerts -----------------------------------------------------------------------------

    def silences() -> tuple[list[dict], str | None]:
        if ctx.subscriptions_path is None:
            return [], "no subscriptions file configured"
        from alerts.subscriptions import load_subscriptions
        from newswatch.errors import ConfigError

        now = datetime.now(timezone.utc)
        try:
            items = load_subscriptions(ctx.subscriptions_path).silences
        except ConfigError as exc:
            return [], f"subscriptions file invalid: {exc.problems[0]}"
        return [{"number": n, "active": s.active(now), "expires_at": s.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "matchers": s.matchers.model_dump(exclude_none=True), "subscriptions": list(s.subscriptions),
                 "comment": s.comment} for n, s in enumerate(items, start=1)], None

    def alerts_data() -> dict:
        listed, problem = silences()
        return {"deliveries": ctx.store.deliveries(), "dead_letters": ctx.store.dead_letters(),
                "silences": listed, "silences_problem": problem}

    @app.get("/alerts", include_in_schema=False)
    def alerts_page(request: Request, notice: str = ""):
        return page(request, "alerts.html", notice=notice, **alerts_data())

    @app.get("/api/alerts", tags=["alerts"], summary="Deliveries, dead letters and silences")
    def alerts_api() -> dict:
        return alerts_data()

    @app.post("/alerts/replay", tags=["alerts"], summary="Send a dead-lettered alert again, same webhook-id")
    async def replay(webhook_id: str = Form(...)):
        from console.actions import replay_letter

        letter = ctx.store.dead_letter(webhook_id)
        if letter is None:
            raise HTTPException(404, "no such dead letter")
        outcome = await replay_letter(ctx.config_path, letter)
        ctx.store.mark_replayed(webhook_id, outcome)
        log_event(log, logging.INFO, "console_replay", webhook_id=webhook_id, subscription=letter.subscription,
                  outcome=outcome)
        return RedirectResponse(f"/alerts?notice={_q(f'{webhook_id}: {outcome}')}", status_code=303)

    @app.post("/alerts/silences", tags=["alerts"], summary="Add a silence to the subscriptions file")
    def silence_add(topic: str = Form(""), source: str = Form(""), language: str = Form(""), term: str = Form(""),
                    duration: str = Form("2h"), comment: str = Form("")):
        from console.actions import add_silence

        notice = add_silence(ctx.subscriptions_path, topic=topic, source=source, language=language, term=term,
                             duration=duration, comment=comment)
        return RedirectResponse(f"/alerts?notice={_q(notice)}", status_code=303)

    @app.post("/alerts/silences/expire", tags=["alerts"], summary="Remove a silence by its number")
    def silence_expire(number: int = Form(..., ge=1)):
        from console.actions import expire_silence

        notice = expire_silence(ctx.subscriptions_path, number)
        return RedirectResponse(f"/alerts?notice={_q(notice)}", status_code=303)

    @app.get("/api/health", tags=["console"], summary="Store counts and whether the feed from Kafka is connected")
    def health() -> dict:
        return {"store": ctx.store.counts(), "kafka_connected": bool(ctx.feeder and ctx.feeder.connected),
                "seq": ctx.store.seq}

    return app


def _wants_json(request: Request) -> bool:
    """The pages answer JSON too (the same as their /api twin) when that is what is asked for."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _unsafe(request: Request) -> bool:
    """A request that may change something and is not an API client's (bearer requests carry their
    own proof: a browser never adds that header to a cross-site request)."""
    ctx = request.app.state.ctx
    return request.method not in ("GET", "HEAD", "OPTIONS") and not security.bearer_ok(
        ctx.token, request.headers.get("authorization"))


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text[:300], safe="")
