"""The load generator: vegeta, a fixed-rate (open-loop) HTTP attacker reporting percentiles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0"
INSTALL_HINT = (
    f"vegeta not found. Install it with Go (the Go module proxy is enough):\n"
    f"    go install {VEGETA_MODULE}\n"
    f"then put $(go env GOPATH)/bin on PATH, or set VEGETA=/path/to/vegeta."
)


class VegetaMissingError(RuntimeError):
    pass


def locate_vegeta(install: bool = True) -> str:
    """``$VEGETA``, ``vegeta`` on PATH, or in Go's bin directory; installed with ``go install``
    when Go is present and nothing is found."""
    candidates = [os.environ.get("VEGETA"), shutil.which("vegeta")]
    go = shutil.which("go")
    gobin = _go_bin(go) if go else None
    if gobin is not None:
        candidates.append(str(gobin / "vegeta"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    if install and go is not None and gobin is not None:
        print(f"installing vegeta: go install {VEGETA_MODULE}", flush=True)
        subprocess.run([go, "install", VEGETA_MODULE], check=True)
        return str(gobin / "vegeta")
    raise VegetaMissingError(INSTALL_HINT)


def _go_bin(go: str) -> Path | None:
    result = subprocess.run(
        [go, "env", "GOBIN", "GOPATH"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return None
    gobin, gopath = [*result.stdout.splitlines(), "", ""][:2]
    if gobin:
        return Path(gobin)
    return Path(gopath.split(os.pathsep)[0]) / "bin" if gopath else None


@dataclass(frozen=True)
class AttackResult:
    rate: float
    requests: int
    throughput: float
    """Successful responses per second, over the attack plus the wait for the last answers."""
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: list[str]

    @property
    def accepted(self) -> int:
        return self.statuses.get("202", 0)

    def sustained(self, max_p99_ms: float) -> bool:
        """Every request answered 202, at (nearly) the offered rate, with a bounded tail."""
        return (
            self.requests > 0
            and self.accepted == self.requests
            and self.throughput >= 0.95 * self.rate
            and self.p99_ms <= max_p99_ms
        )


def attack(
    vegeta: str, targets: Path, rate: int, duration_s: float, max_workers: int = 256
) -> AttackResult:
    attack_command = [
        vegeta, "attack", "-format=json", f"-targets={targets}", f"-rate={rate}/1s",
        f"-duration={duration_s}s", "-timeout=10s", "-keepalive=true", "-http2=false",
        # Past saturation vegeta would open ever more connections, and the server would spend
        # the next step answering requests nobody waits for; a cap keeps an overload local.
        f"-max-workers={max_workers}",
    ]  # fmt: skip
    with subprocess.Popen(attack_command, stdout=subprocess.PIPE) as attacker:
        report = subprocess.run(
            [vegeta, "report", "-type=json"],
            stdin=attacker.stdout,
            capture_output=True,
            text=True,
            check=True,
        )
    data: dict[str, Any] = json.loads(report.stdout)
    latencies = data["latencies"]
    return AttackResult(
        rate=rate,
        requests=int(data["requests"]),
        throughput=float(data["throughput"]),
        statuses={str(k): int(v) for k, v in (data.get("status_codes") or {}).items()},
        p50_ms=latencies["50th"] / 1e6,
        p99_ms=latencies["99th"] / 1e6,
        max_ms=latencies["max"] / 1e6,
        errors=list(data.get("errors") or [])[:5],
    )
