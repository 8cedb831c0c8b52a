"""The sandbox's exceptions: one root for everything the local stand-ins raise."""


class SandboxError(Exception):
    """Root of every error raised by :mod:`sandbox`."""


class KafkaJarsError(SandboxError):
    """The Apache Kafka jars could not be fetched (Maven missing, offline, or a failed resolve)."""


class BrokerStartError(SandboxError):
    """A local broker did not come up; the message carries the tail of its log."""
