"""Container images for the deploy checks, built here without any image registry.

* Base images come from Debian's packages: ``mmdebstrap --variant=minbase`` writes a root
  filesystem tarball (cached a week under ``~/.cache/segstream/images``), ``docker import`` turns
  it into an image. ``$SEGSTREAM_BASE_IMAGE``, ``$KAFKA_IMAGE`` and ``$PROMETHEUS_IMAGE`` replace
  them with registry images where a registry is reachable.
* The segstream image is the repository's Dockerfile, built with testcontainers' ``DockerImage``
  from the checkout, with ``--network none``: pip installs from a wheelhouse downloaded on the
  host (pip inside a build has no network, or no CA certificates, here).
* The Kafka image is deploy/kafka/Dockerfile over the broker jars the sandbox caches; the
  Prometheus image is Debian's Prometheus binaries over the same Debian base.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sandbox.kafka.jars import cache_root, ensure_kafka_jars

REPO: Final = Path(__file__).resolve().parents[3]
DEPLOY: Final = REPO / "deploy"
WHEELHOUSE: Final = REPO / ".wheelhouse"
# Debian's archive moves on (security updates); a week-old root filesystem is still what a user
# would get, and re-making one costs ~25 s.
BASE_MAX_AGE_S: Final = 7 * 24 * 3600
# pytest-timeout for a test whose fixtures may build the images: on a new machine that is three
# downloads from Debian's archive, the wheels from PyPI and two builds, minutes on two cores.
IMAGE_TEST_TIMEOUT_S: Final = 900
SEGSTREAM_TAG: Final = "segstream:deploy-check"
KAFKA_TAG: Final = "segstream-kafka:deploy-check"
PROMETHEUS_TAG: Final = "segstream-prometheus:deploy-check"


@dataclass(frozen=True)
class BaseImage:
    """A Debian bookworm minbase image with ``packages``.

    ``customize`` are mmdebstrap customize hooks (shell, ``$1`` is the root directory);
    ``changes`` are Dockerfile instructions applied by ``docker import``.
    """

    name: str
    packages: tuple[str, ...]
    customize: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        text = "\n".join([*self.packages, *self.customize, *self.changes])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"segstream-base/{self.name}:bookworm-{self.key}"


PYTHON_BASE: Final = BaseImage("python", ("python3", "python3-venv"))
JRE_BASE: Final = BaseImage("jre", ("openjdk-17-jre-headless",))


def ensure_base_image(client: Any, spec: BaseImage) -> str:
    """The tag of ``spec`` in the engine, imported from a cached mmdebstrap tarball."""
    images = cache_root() / "images"
    images.mkdir(parents=True, exist_ok=True)
    tarball = images / f"{spec.name}-{spec.key}.tar"
    with (images / f".{spec.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stale = not tarball.exists() or time.time() - tarball.stat().st_mtime > BASE_MAX_AGE_S
        if stale:
            _mmdebstrap(spec, tarball)
        elif client.images.list(name=spec.tag):
            return spec.tag
        repository, tag = spec.tag.split(":")
        client.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=list(spec.changes)
        )
    return spec.tag


def _mmdebstrap(spec: BaseImage, tarball: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is not installed: run deploy/check/install-tools.sh")
    partial = tarball.with_suffix(".partial.tar")  # mmdebstrap picks the format by suffix
    command = [
        "mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(spec.packages)}",
        *[f"--customize-hook={hook}" for hook in spec.customize],
        "bookworm", str(partial),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"mmdebstrap {spec.name} failed:\n{result.stderr[-4000:]}")
    partial.rename(tarball)


def ensure_wheelhouse() -> Path:
    """``.wheelhouse/`` in the checkout: wheels of every runtime dependency and of the build
    backend, downloaded on the host once per pyproject.toml and copied in for the build."""
    pyproject = (REPO / "pyproject.toml").read_bytes()
    project = tomllib.loads(pyproject.decode())
    requirements = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    cache = cache_root() / "wheels" / hashlib.sha256(pyproject).hexdigest()[:12]
    cache.parent.mkdir(parents=True, exist_ok=True)
    with (cache.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / ".complete").exists():
            staging = cache.with_suffix(".partial")
            shutil.rmtree(staging, ignore_errors=True)
            command = [sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(staging)]
            subprocess.run([*command, *requirements], check=True, capture_output=True)
            (staging / ".complete").touch()
            shutil.rmtree(cache, ignore_errors=True)
            staging.rename(cache)
    shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    shutil.copytree(cache, WHEELHOUSE, ignore=shutil.ignore_patterns(".complete"))
    return WHEELHOUSE


def _build(path: Path, tag: str, title: str, buildargs: dict[str, str]) -> str:
    """Build ``path``'s Dockerfile as ``tag`` with no network, then remove the images earlier
    builds left untagged (``title`` is the Dockerfile's org.opencontainers.image.title)."""
    from testcontainers.core.image import DockerImage  # noqa: PLC0415 - needs Docker

    image = DockerImage(
        path=path,
        tag=tag,
        clean_up=False,
        buildargs=buildargs,
        network_mode="none",
        forcerm=True,
    )
    image.build()
    image.get_docker_client().client.images.prune(
        filters={"dangling": True, "label": f"org.opencontainers.image.title={title}"}
    )
    return tag


def build_segstream_image(base_image: str, tag: str = SEGSTREAM_TAG) -> str:
    """Build the repository's Dockerfile on ``base_image``, with no network in the build."""
    ensure_wheelhouse()
    buildargs = {
        "BASE_IMAGE": base_image,
        "PIP_INSTALL_OPTIONS": "--no-index --find-links /src/.wheelhouse",
    }
    return _build(REPO, tag, "segstream", buildargs)


def build_kafka_image(base_image: str, work_dir: Path, tag: str = KAFKA_TAG) -> str:
    """deploy/kafka/Dockerfile over the cached Apache Kafka jars (fetched with Maven if new)."""
    context = work_dir / "kafka-image"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(REPO / "deploy" / "kafka", context)
    shutil.copy(REPO / "sandbox" / "kafka" / "log4j2.properties", context)
    jars = ensure_kafka_jars()
    shutil.copytree(jars.libs, context / "libs", ignore=shutil.ignore_patterns(".*"))
    return _build(context, tag, "segstream-kafka", {"BASE_IMAGE": base_image})


def build_prometheus_image(base_image: str, work_dir: Path, tag: str = PROMETHEUS_TAG) -> str:
    """prometheus.Dockerfile (beside this module) with the host's Debian Prometheus binaries."""
    context = work_dir / "prometheus-image"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("prometheus.Dockerfile"), context / "Dockerfile")
    for binary in ("prometheus", "promtool"):
        path = shutil.which(binary)
        if path is None:
            raise RuntimeError(f"{binary} is not installed: run deploy/check/install-tools.sh")
        shutil.copy(path, context / binary)
    return _build(context, tag, "segstream-prometheus", {"BASE_IMAGE": base_image})
