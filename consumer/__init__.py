"""The consumer group: interaction events from Kafka to the CRM, at least once, in order per key."""
