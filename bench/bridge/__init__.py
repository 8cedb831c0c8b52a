"""``python -m bench.bridge``: durable 202s per second vs a no-Kafka baseline of the same app."""
