#!/usr/bin/env python3
"""``segstream-healthcheck [URL]``: exit 0 when ``URL`` answers 2xx within 2 seconds, else 1.

The container image's health check (Docker ``HEALTHCHECK``, compose ``healthcheck``). Without an
argument it checks ``$SEGSTREAM_HEALTHCHECK_URL``, else the bridge's liveness endpoint
``http://127.0.0.1:$SEGSTREAM_BRIDGE_PORT/healthz`` (the image's default command). The other
processes are checked on what they serve: the consumer's ``/metrics``
(``SEGSTREAM_CONSUMER_METRICS_PORT``), the CRM simulator's ``/_sim/stats``.

Standard library only, so it runs in the slim image without curl or wget.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 2.0


def default_url() -> str:
    explicit = os.environ.get("SEGSTREAM_HEALTHCHECK_URL")
    if explicit:
        return explicit
    return f"http://127.0.0.1:{os.environ.get('SEGSTREAM_BRIDGE_PORT', '8080')}/healthz"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else default_url()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - our URL
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        return 0
    print(f"unhealthy: {url}: HTTP {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
