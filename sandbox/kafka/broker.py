"""A real Apache Kafka cluster (KRaft, combined broker+controller nodes) as local JVM processes."""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from confluent_kafka.admin import AdminClient

from sandbox.errors import BrokerStartError
from sandbox.kafka.jars import KafkaJars, ensure_kafka_jars
from sandbox.kafka.security import (
    BrokerSecurity,
    jvm_options,
    listener_properties,
    scram_format_arguments,
)

# A broker on a 2-core CI box needs ~5 s to start; a minute leaves room for a cold JIT and a busy
# machine without hiding a broker that will never come up.
START_TIMEOUT_S: Final = 90.0
# Controlled shutdown of a combined node moves leadership and flushes logs: seconds, not minutes.
STOP_TIMEOUT_S: Final = 30.0
# 512 MiB heap is plenty for test traffic and keeps three nodes within a small CI machine.
DEFAULT_HEAP: Final = "512m"

_log = logging.getLogger(__name__)


# Listening ports for local services are picked below Linux's default ephemeral range
# (32768-60999). A port taken from inside it can be handed to some outgoing connection (a Kafka
# client, an HTTP pool) between our probe and the service's bind, and the service then fails
# with "address already in use".
_LISTEN_PORTS: Final = range(20_000, 32_000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, never the same twice in this process."""
    for _ in range(1000):
        port = random.choice(_LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError("no free port in 20000-31999")


def wait_for_brokers(
    bootstrap_servers: str,
    node_ids: set[int],
    timeout: float,
    *,
    exited: Callable[[], str | None],
    logs: Callable[[], str],
) -> None:
    """Poll the cluster's metadata until every id of ``node_ids`` is a registered broker.

    ``exited`` returns why the cluster can no longer come up (a node's process or container
    ended), or None; ``logs`` the log tails put in the error after ``timeout`` seconds.
    Raises :class:`BrokerStartError`.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    deadline = time.monotonic() + timeout
    while True:
        reason = exited()
        if reason is not None:
            raise BrokerStartError(reason)
        try:
            metadata = admin.list_topics(timeout=2)
            if node_ids <= set(metadata.brokers):
                return
        except Exception:  # noqa: S110 - KafkaException until the listener is up; keep polling
            pass
        if time.monotonic() > deadline:
            raise BrokerStartError(f"Kafka not ready after {timeout:.0f}s:\n{logs()}")
        time.sleep(0.2)


@dataclass
class _Node:
    node_id: int
    port: int
    controller_port: int
    home: Path
    # The secured listeners' ports (0 when the cluster has none): TLS with a client certificate,
    # and TLS + SASL.
    ssl_port: int = 0
    sasl_ssl_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_handle: IO[bytes] | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"


class LocalKafka:
    """``nodes`` KRaft nodes on 127.0.0.1, each a broker and a voter.

    The data directories live under ``work_dir`` and survive :meth:`stop_node` /
    :meth:`start_node`, so a test can take a broker away and bring the same one back. With
    ``security`` (:func:`sandbox.kafka.security.generate_security`) each node also listens with
    ``SSL`` (mutual TLS) and ``SASL_SSL`` (SCRAM-SHA-256/512, PLAIN); the ``PLAINTEXT`` listener
    stays for the brokers among themselves and for test set-up.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        nodes: int = 1,
        ports: list[int] | None = None,
        controller_ports: list[int] | None = None,
        heap: str = DEFAULT_HEAP,
        jars: KafkaJars | None = None,
        security: BrokerSecurity | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self._work_dir = work_dir
        self._heap = heap
        self._jars = jars
        self._security = security
        self._cluster_id = uuid.uuid4()
        ports = ports or [free_port() for _ in range(nodes)]
        controller_ports = controller_ports or [free_port() for _ in range(nodes)]
        self._nodes = [
            _Node(i + 1, ports[i], controller_ports[i], work_dir / f"node-{i + 1}")
            for i in range(nodes)
        ]
        if security is not None:
            for node in self._nodes:
                node.ssl_port, node.sasl_ssl_port = free_port(), free_port()

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self._nodes)

    @property
    def security(self) -> BrokerSecurity | None:
        return self._security

    @property
    def ssl_bootstrap_servers(self) -> str:
        """The ``SSL`` listeners (a client certificate signed by the sandbox CA is required)."""
        return self._secured_bootstrap(lambda node: node.ssl_port)

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        """The ``SASL_SSL`` listeners (SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN over TLS)."""
        return self._secured_bootstrap(lambda node: node.sasl_ssl_port)

    def _secured_bootstrap(self, port: Callable[[_Node], int]) -> str:
        if self._security is None:
            raise ValueError("this cluster was started without security listeners")
        return ",".join(f"127.0.0.1:{port(node)}" for node in self._nodes)

    @property
    def log_files(self) -> list[Path]:
        return [node.log_file for node in self._nodes]

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        if self._jars is None:
            self._jars = ensure_kafka_jars()
        for node in self._nodes:
            self._prepare(node)
        for node in self._nodes:
            self._launch(node)
        self.wait_until_ready(timeout)

    def stop(self) -> None:
        # Signal every node before waiting for any: a node stopped alone while the others wait
        # their turn loses the controller quorum and hangs in controlled shutdown until killed.
        for node in self._nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self._nodes:
            self._terminate(node)

    def stop_node(self, index: int, *, kill: bool = False) -> None:
        """Take node ``index`` (0-based) down: SIGTERM (controlled shutdown) or SIGKILL."""
        self._terminate(self._nodes[index], kill=kill)

    def pause_node(self, index: int) -> None:
        """Freeze node ``index`` (SIGSTOP): its connections stay open but nothing answers, like
        a broker in a long GC pause or behind a dead network path; :meth:`resume_node` undoes it.
        """
        process = self._nodes[index].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGSTOP)

    def resume_node(self, index: int) -> None:
        process = self._nodes[index].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)

    def start_node(self, index: int, timeout: float = START_TIMEOUT_S) -> None:
        self._launch(self._nodes[index])
        self.wait_until_ready(timeout)

    def wait_until_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Poll metadata until every running node is registered, or fail with the log tail."""
        running = {n.node_id for n in self._nodes if n.process and n.process.poll() is None}

        def exited() -> str | None:
            for node in self._nodes:
                if node.process is not None and node.process.poll() is not None:
                    return (
                        f"Kafka node {node.node_id} exited with {node.process.returncode}:\n"
                        f"{self._log_tail(node)}"
                    )
            return None

        wait_for_brokers(
            self.bootstrap_servers,
            running,
            timeout,
            exited=exited,
            logs=lambda: "\n".join(self._log_tail(n) for n in self._nodes),
        )

    def _voters(self) -> str:
        return ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self._nodes)

    def _properties(self, node: _Node) -> str:
        replicas = min(3, len(self._nodes))
        advertised = {"PLAINTEXT": node.port}
        if self._security is not None:
            advertised |= {"SSL": node.ssl_port, "SASL_SSL": node.sasl_ssl_port}
        listeners = {**advertised, "CONTROLLER": node.controller_port}
        settings: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": self._voters(),
            "listeners": ",".join(f"{name}://127.0.0.1:{p}" for name, p in listeners.items()),
            "advertised.listeners": ",".join(
                f"{name}://127.0.0.1:{p}" for name, p in advertised.items()
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(
                f"{name}:{'PLAINTEXT' if name == 'CONTROLLER' else name}" for name in listeners
            ),
            "log.dirs": node.data_dir,
            # Topics are created explicitly (with their partitions and min ISR); a typo in a
            # topic name should fail loudly, not create a one-partition topic.
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            # Fewer internal partitions make the first group join seconds faster on a laptop.
            "offsets.topic.num.partitions": 6,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.num.partitions": 6,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min(2, replicas),
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min(2, replicas),
            # Tests create a group per test; waiting 3 s for more members each time adds minutes.
            "group.initial.rebalance.delay.ms": 0,
            "log.retention.hours": 24,
        }
        if self._security is not None:
            settings |= listener_properties(self._security)
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _prepare(self, node: _Node) -> None:
        node.home.mkdir(parents=True, exist_ok=True)
        node.config_file.write_text(self._properties(node))
        log4j = node.home / "log4j2.properties"
        log4j.write_text(resources.files("sandbox.kafka").joinpath("log4j2.properties").read_text())
        if (node.data_dir / "meta.properties").exists():
            return
        scram = [] if self._security is None else scram_format_arguments(self._security)
        result = subprocess.run(
            [*self._java(node), "kafka.tools.StorageTool", "format", "--ignore-formatted",
             "-t", str(self._cluster_id), "-c", str(node.config_file), *scram],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise BrokerStartError(f"formatting {node.data_dir} failed:\n{result.stderr[-4000:]}")

    def _java(self, node: _Node) -> list[str]:
        if self._jars is None:
            self._jars = ensure_kafka_jars()
        java = shutil.which("java", path=_java_path())
        if java is None:
            raise BrokerStartError("java is not on PATH (Kafka needs a JRE 17 or newer)")
        return [
            java, "-Xms128m", f"-Xmx{self._heap}", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.home / 'log4j2.properties'}",
            *([] if self._security is None else jvm_options(self._security)),
            "-cp", self._jars.classpath,
        ]  # fmt: skip

    def _launch(self, node: _Node) -> None:
        if node.process is not None and node.process.poll() is None:
            return
        node.log_handle = node.log_file.open("ab")
        # A new session: Ctrl-C in a terminal reaches our Python parent, which then stops the
        # JVM in order, instead of the JVM dying mid-write from the same SIGINT.
        node.process = subprocess.Popen(
            [*self._java(node), "kafka.Kafka", str(node.config_file)],
            stdout=node.log_handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        _log.info("kafka node %d starting on 127.0.0.1:%d (log %s)", node.node_id, node.port,
                  node.log_file)  # fmt: skip

    def _terminate(self, node: _Node, *, kill: bool = False) -> None:
        process = node.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        node.process = None
        if node.log_handle is not None:
            node.log_handle.close()
            node.log_handle = None

    @staticmethod
    def _log_tail(node: _Node, lines: int = 40) -> str:
        try:
            text = node.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"(node {node.node_id}: no log)"
        return "\n".join(text[-lines:])


def _java_path() -> str:
    """Prefer ``$JAVA_HOME/bin`` so a CI that sets JAVA_HOME gets the JDK it asked for."""
    java_home = os.environ.get("JAVA_HOME")
    path = os.environ.get("PATH", "")
    return f"{java_home}/bin{os.pathsep}{path}" if java_home else path
