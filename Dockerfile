# The swimstream image: the service, its connectors and the towers example.
# docker-compose.yml builds it for the `swimstream` and `simulator` services; for your own
# app, copy your agents' package and YAML in the same way and point --config at it.
FROM python:3.11-slim

WORKDIR /app
# MALLOC_ARENA_MAX: glibc gives each thread that allocates (librdkafka's, SQLite's) an
# arena of its own and keeps what they free: over 5 minutes of partitions moving every
# minute (bench/soak_churn.py) resident memory ended at 704 MB with 2 arenas against 972,
# before each restore gave back what it freed; since, at 589 MB against 616.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    SWIMSTREAM_DATA=/data \
    MALLOC_ARENA_MAX=2

# Dependencies first (the tested versions, as `make` installs them), in a layer of their
# own, so that a change to the code does not reinstall them. Without the `embedded` extra:
# the image runs next to a real broker (`kind: embedded` then says what to install).
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt
COPY swimstream swimstream
COPY connectors connectors
RUN pip install --no-cache-dir --no-deps . && mkdir -p /data

# The example app: its agents and its config (agents are imported from PYTHONPATH).
COPY examples examples
COPY config config

VOLUME /data
# 9001: HTTP lanes, dashboard, /metrics, /healthz, /readyz; 7001: the instance mesh's
# mesh.listen, kept for it (not built yet: nothing listens there).
EXPOSE 9001 7001
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9001/healthz', timeout=2)"]
# exec form: swimstream is PID 1 and gets docker stop's SIGTERM (it drains within 8 s).
ENTRYPOINT ["swimstream"]
CMD ["run", "--config", "config/towers.yaml"]
