# One image for every segstream process: the webhook bridge (default command), the consumer
# (`segstream-consumer run`, `segstream-consumer create-topics`), the dead-letter tool
# (`segstream-dlq`) and the CRM simulator (`segstream-sandbox crm`). Every console script of
# pyproject.toml is on PATH.
#
#   docker build -t segstream .
#
# BASE_IMAGE is any Debian bookworm image with python3 (3.11) and its venv module; the default is
# the public one. Where no registry is reachable, make one from Debian's packages and pass it:
#   mmdebstrap --variant=minbase --include=python3,python3-venv bookworm - \
#     | docker import - segstream-base/python:bookworm
#   docker build --build-arg BASE_IMAGE=segstream-base/python:bookworm ...
# PIP_INSTALL_OPTIONS is given to pip; with wheels downloaded beforehand into .wheelhouse/ (see
# README, "Deploying") a build needs no network at all:
#   --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links /src/.wheelhouse" --network none
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PIP_INSTALL_OPTIONS=""
LABEL org.opencontainers.image.title="segstream"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# .dockerignore keeps tests, benchmarks, deploy/ and local state out of the context.
COPY . .
RUN python3 -m venv /opt/segstream \
 && /opt/segstream/bin/pip install ${PIP_INSTALL_OPTIONS} /src \
 && install -m 0755 deploy/docker/healthcheck.py /opt/segstream/bin/segstream-healthcheck \
 && sed -i '1s|.*|#!/opt/segstream/bin/python3|' /opt/segstream/bin/segstream-healthcheck

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="segstream" \
      org.opencontainers.image.description="segstream: webhook bridge, consumer, dead-letter tool, CRM simulator" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it and mounted secrets can be
# made readable to it (fsGroup) without knowing a user name.
RUN groupadd --system --gid 10001 segstream \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin segstream
COPY --from=build /opt/segstream /opt/segstream
# Inside a container the services listen on every interface (the defaults outside are loopback
# only); PYTHONDONTWRITEBYTECODE keeps a read-only root filesystem quiet.
ENV PATH=/opt/segstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SEGSTREAM_BRIDGE_HOST=0.0.0.0 \
    SEGSTREAM_CONSUMER_METRICS_HOST=0.0.0.0 \
    SEGSTREAM_CRM_SIM_HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
EXPOSE 8080 9102 8090
# Docker's own health check, for the default command (the bridge's /healthz); compose gives the
# other processes theirs (`segstream-healthcheck URL`), Kubernetes uses its probes instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["segstream-healthcheck"]
CMD ["segstream-bridge"]
