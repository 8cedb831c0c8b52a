"""The CRM simulator as a real process, and its inspection API as plain functions."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from sandbox.kafka.broker import free_port
from sandbox.secrets import ensure_secret_file, new_bearer_token
from support.services import ServiceProcess
from support.waiting import eventually_sync

# The consumer's Idempotency-Key of a request is the event id, then "~r{n}" for its n-th replay,
# then ":create" / ":update" for the steps after a 404 (README: "What a record goes through").
_REQUEST_KEY = re.compile(r"^(?P<event_id>.*?)(?:~r[0-9]+)?(?::create|:update)?$", re.DOTALL)


def event_id_of(idempotency_key: str) -> str:
    match = _REQUEST_KEY.match(idempotency_key)
    assert match is not None
    return match.group("event_id")


class CrmSimulator:
    def __init__(self, run_dir: Path, **settings: Any) -> None:
        self.token_file = run_dir / "crm-token"
        ensure_secret_file(self.token_file, new_bearer_token)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {f"SEGSTREAM_CRM_SIM_{k.upper()}": str(v) for k, v in settings.items()}
        env |= {
            "SEGSTREAM_CRM_SIM_PORT": str(self.port),
            "SEGSTREAM_CRM_SIM_TOKEN_FILE": str(self.token_file),
        }
        self.process = ServiceProcess("crm-sim", ["sandbox", "crm"], env, run_dir)
        self.process.wait_http(self.url + "/healthz")

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:  # noqa: S310
            return json.load(response)

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        try:
            return dict(self._get(f"/_sim/customers/{customer_id}"))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def writes(self, customer_id: str | None = None) -> list[dict[str, Any]]:
        query = f"?customer_id={customer_id}" if customer_id else ""
        return list(self._get("/_sim/writes" + query)["writes"])

    def applied(self) -> list[dict[str, Any]]:
        """Every write the consumer had applied (a create with attributes for a new customer,
        else an update), in order, each with the ``event_id`` its Idempotency-Key was derived
        from. Writes without a key (a test creating a customer by hand) are not events'."""
        return [
            {**w, "event_id": event_id_of(w["idempotency_key"])}
            for w in self.writes()
            if w["idempotency_key"] is not None
        ]

    def applied_event_ids(self) -> list[str]:
        return [write["event_id"] for write in self.applied()]

    def event_ids_by_customer(self) -> dict[str, list[str]]:
        """Per customer, the event ids of applied writes, in the order they were applied."""
        order: dict[str, list[str]] = defaultdict(list)
        for write in self.applied():
            order[write["customer_id"]].append(write["event_id"])
        return dict(order)

    def requests(self) -> list[dict[str, Any]]:
        return list(self._get("/_sim/requests")["requests"])

    def stats(self) -> dict[str, Any]:
        return dict(self._get("/_sim/stats"))

    def _post(self, path: str, body: Any) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return dict(json.load(response))

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        return self._post("/_sim/faults", changes)

    def reset(self) -> None:
        """Forget every customer, write, request and idempotency key (faults stay)."""
        self._post("/_sim/reset", {})

    def create_customer(self, customer_id: str) -> None:
        """Create a customer the way a CRM user would (with the bearer token)."""
        token = self.token_file.read_text().strip()
        body = {"id": customer_id}
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.url + "/v1/customers",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            if response.status != 201:
                raise RuntimeError(f"create {customer_id}: {response.status}")

    def rotate_token(self, new_token: str) -> None:
        """Revoke the token for a new one: the simulator accepts only ``new_token`` from now.
        The token file (shared with consumers started with it) holds the new one."""
        reloads = self.process.log_text().count("bearer token reloaded")
        self.token_file.write_text(new_token)
        self.process.process.send_signal(signal.SIGHUP)
        eventually_sync(
            lambda: self.process.log_text().count("bearer token reloaded") > reloads, timeout=10
        )

    def stop(self) -> int:
        return self.process.stop()
