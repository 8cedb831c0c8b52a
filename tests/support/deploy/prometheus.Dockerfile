# Prometheus for the compose check, shaped like the official prom/prometheus image (the server
# as entrypoint, promtool beside it, user nobody, a writable /prometheus), from Debian's
# prometheus package: its two binaries, copied from the host that installed it (they link
# libc only), over the Debian base image the checks already made.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="segstream-prometheus"
COPY prometheus promtool /usr/bin/
RUN mkdir /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
