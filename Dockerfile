# newswatch: one image for every stage (ingest, process, alerts, sink); docker-compose.yml picks the verb.
# Two stages so the runtime image carries the virtualenv only, not pip's build leftovers.
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# .dockerignore lets in only the package sources, pyproject.toml and README.md.
COPY . .
RUN python -m venv /opt/newswatch \
 && /opt/newswatch/bin/pip install --no-cache-dir .

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="newswatch" \
      org.opencontainers.image.description="News feeds in, signed topic alerts out (Kafka + faust-streaming)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH="/opt/newswatch/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/newswatch /opt/newswatch
# A fixed, unprivileged uid; /var/lib/newswatch holds the stages' local state (a volume in compose).
RUN groupadd --system --gid 10001 newswatch \
 && useradd --system --uid 10001 --gid newswatch --home-dir /var/lib/newswatch --create-home \
            --shell /usr/sbin/nologin newswatch
USER 10001:10001
WORKDIR /var/lib/newswatch
# Config is mounted here (the repository's seeds/ folder by default, see docker-compose.yml).
VOLUME ["/var/lib/newswatch"]
ENTRYPOINT ["newswatch"]
CMD ["--help"]
