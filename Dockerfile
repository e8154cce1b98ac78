# batchd in a container. Build: `docker build -t batchd .`; run: see compose.yaml, or
#   docker run -d --name batchd -v batchd-data:/data --stop-timeout 30 \
#     -v "$PWD/openai-api-key:/run/secrets/openai-api-key:ro" batchd
# Every instruction carries the reason it is here on the line above it.

# Build stage: the same Python minor and Debian release as the runtime, because a venv records the
# interpreter's path and links against its libraries.
FROM python:3.11-slim-bookworm AS build

# No pip cache or version check in a throwaway stage: smaller layers, no network call to PyPI for nothing.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# A venv at the path it will have at run time, so its scripts' #! lines stay right after the copy.
RUN python -m venv /opt/batchd

# Work in a scratch folder that the runtime stage never sees.
WORKDIR /src

# Only what the package build reads (pyproject names README.md as its readme); tests and docs stay out.
COPY pyproject.toml README.md ./

# The package itself, copied last so the layers above are reused while only code changes.
COPY daemon ./daemon

# A regular, non-editable install: the runtime stage copies /opt/batchd and nothing from /src.
RUN /opt/batchd/bin/pip install --no-cache-dir .

# Runtime stage: no compilers, no pip cache, no sources; just Python, tini and the venv.
FROM python:3.11-slim-bookworm

# tini as PID 1 forwards SIGTERM to batchd and reaps zombies (a plain PID 1 ignores unhandled signals).
# Not pinned (DL3008): bookworm only ships security fixes to tini, an exact pin would break the build the
# day one lands, and the base image tag already fixes the Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# A fixed, non-root UID/GID (10001) so a bind-mounted /data and the key file can be chowned to it in advance.
RUN groupadd --system --gid 10001 batchd \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin batchd \
    && install -d -o 10001 -g 10001 -m 0700 /data

# The venv from the build stage, owned by root: the daemon can run it but not change it.
COPY --from=build /opt/batchd /opt/batchd

# PATH finds `batchd`; unbuffered output so every log line reaches `docker logs` at once.
ENV PATH=/opt/batchd/bin:$PATH PYTHONUNBUFFERED=1

# The key comes from a compose/swarm secret file, never from ENV or a build arg. A key file that is not
# there gives way to OPENAI_API_KEY, so `docker run -e OPENAI_API_KEY=...` also works as it is.
# DL3064 takes the name for a secret; the value is only a path.
# hadolint ignore=DL3064
ENV OPENAI_API_KEY_FILE=/run/secrets/openai-api-key

# One volume for every folder (pending_upload/, batch_results/, state/ ...): batchd renames between
# them, and renames across separate mounts fail (EXDEV). A new named volume inherits the 10001 owner.
VOLUME /data

# Relative paths in commands and `docker exec` sessions resolve inside the data root.
WORKDIR /data

# Drop root: numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

# The default, stated on purpose: batchd's first SIGTERM stops it gracefully within 10 s (a second forces).
# Give `docker stop` more than that: `-t 30`, or stop_grace_period in compose.yaml.
STOPSIGNAL SIGTERM

# The same heartbeat check a human runs: unhealthy when the main loop or its threads stop moving. The
# start period covers recovery and the first scan, before the first heartbeat is written.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["batchd", "healthcheck", "--root", "/data"]

# Exec form, no shell: signals go to tini, which passes them to batchd; arguments in CMD are batchd's.
ENTRYPOINT ["/usr/bin/tini", "--", "batchd"]

# Run the daemon on the volume; `docker run IMAGE status --root /data` runs another command instead.
CMD ["run", "--root", "/data"]
