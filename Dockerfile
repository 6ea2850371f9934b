# netlog in a container: `docker compose up` (see docker-compose.yml).
#
# Build arguments:
#   BASE    the base image; anything with python3 >= 3.11 and its venv module
#           (python:3.12-slim, or a Debian bookworm with python3 + python3-venv:
#           docker/base-image.sh makes one without a registry).
#   WHEELS  a directory in the build context holding wheels for the project and
#           every dependency (`pip wheel . -w DIR` on a machine with the same
#           Python and platform).  When set, nothing is fetched from a package
#           index: `pip install --no-index --find-links`.  When empty (the
#           default), the project is installed from source through the index.
#
# Only classic Dockerfile syntax (no RUN --mount), so it builds with BuildKit
# and with the legacy builder alike.

ARG BASE=python:3.12-slim

# ---- build: a virtual environment in /opt/netlog with the project in it ----
FROM ${BASE} AS build
ARG WHEELS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY . /src
RUN set -eu; \
    python3 -m venv /opt/netlog; \
    if [ -n "${WHEELS}" ]; then \
        if ! ls "/src/${WHEELS}"/netlog-*.whl >/dev/null 2>&1; then \
            echo "WHEELS=${WHEELS}: no netlog-*.whl in that directory of the build context" >&2; \
            exit 1; \
        fi; \
        /opt/netlog/bin/pip install --no-index --find-links "/src/${WHEELS}" netlog; \
    else \
        /opt/netlog/bin/pip install /src; \
    fi; \
    /opt/netlog/bin/netlog --help >/dev/null; \
    /opt/netlog/bin/python -c 'import gevent, orjson, structlog, servers.runner'; \
    install -m 0644 /src/docker/healthcheck.py /opt/netlog/healthcheck.py

# ---- runtime: the same base, the venv, a non-root user, a volume ----
FROM ${BASE}
RUN set -eu; \
    groupadd --gid 10001 netlog; \
    useradd --uid 10001 --gid netlog --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin netlog; \
    mkdir -p /data; \
    chown netlog:netlog /data
COPY --from=build /opt/netlog /opt/netlog

ENV PATH=/opt/netlog/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NETLOG_HOST=0.0.0.0 \
    NETLOG_LOG_DIR=/data

# The records live here; a named volume mounted on it starts out owned by
# the netlog user because the image's /data is.
VOLUME ["/data"]
WORKDIR /data
USER netlog:netlog

EXPOSE 7007/tcp 7007/udp 9020/tcp 9021/udp 9022/tcp

# Exec form: netlog is PID 1 and gets SIGTERM itself (it installs handlers
# for SIGTERM and SIGINT; PID 1 would ignore a signal it had no handler for).
# `docker run IMAGE probe 127.0.0.1:7007` runs another subcommand.
# The compose file's health check is `python /opt/netlog/healthcheck.py`
# (docker/healthcheck.py): a `health` datagram, counted apart from probes.
STOPSIGNAL SIGTERM
ENTRYPOINT ["netlog"]
CMD ["serve"]
