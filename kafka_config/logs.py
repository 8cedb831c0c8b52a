"""librdkafka's own log lines as Python log records, so they come out as JSON with the rest.

Without a ``logger`` in its configuration librdkafka prints to the process's stderr in its own
format (``%7|1700000000.123|FAIL|rdkafka#producer-1| ...``), which a log pipeline expecting one
JSON object per line cannot parse. confluent-kafka hands each line to the configured
:class:`logging.Logger` as ``logger.log(level, "%s [%s] %s", facility, name, message)`` (see
confluent-kafka's ``Handle`` log callback), from the thread that calls ``poll()``/``consume()``.
:class:`LibrdkafkaFields` turns those arguments into fields: ``message`` is librdkafka's text,
``kafka_client`` the instance name (``{client.id}#{producer|consumer}-{n}``), ``client_id`` the
configured ``client.id`` and ``facility`` librdkafka's subsystem tag (``FAIL``, ``REQTMOUT``...).
"""

from __future__ import annotations

import logging
from typing import Final

LOGGER_NAME: Final = "librdkafka"


class LibrdkafkaFields(logging.Filter):
    """Rewrites confluent-kafka's ``"%s [%s] %s"`` record into a message and named fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg == "%s [%s] %s" and isinstance(args, tuple) and len(args) == 3:
            facility, name, text = (str(arg) for arg in args)
            record.msg, record.args = text, ()
            record.facility = facility
            record.kafka_client = name
            record.client_id = name.rsplit("#", 1)[0]
        return True


def librdkafka_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """The logger to pass as confluent-kafka's ``logger`` configuration property."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, LibrdkafkaFields) for f in logger.filters):
        logger.addFilter(LibrdkafkaFields())
    return logger
