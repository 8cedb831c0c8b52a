"""librdkafka client configuration shared by the services: security and log routing.

* :mod:`~kafka_config.security` - TLS and SASL settings (a pydantic-settings mixin each service's
  settings class inherits, so each reads them under its own prefix) and their mapping onto
  librdkafka's configuration properties;
* :mod:`~kafka_config.logs` - librdkafka's own log lines as Python log records (JSON with the
  rest), carrying the client id.
"""
