"""The bridge's exceptions: one root for everything :mod:`producer_bridge` raises."""


class BridgeError(Exception):
    """Root of every error raised by :mod:`producer_bridge`."""


class ConfigurationError(BridgeError):
    """Settings that cannot work (no signing secret, unreadable secret file, ...)."""


class AuthenticationError(BridgeError):
    """A request whose signature or shared secret does not check out."""


class PublishUnavailableError(BridgeError):
    """The broker did not take the record (unreachable, timed out, local queue full).

    The caller answers 503 + Retry-After: the event was not accepted and the sender must retry.
    """
