"""The webhook front door: interaction-completed events in, Avro records on Kafka out."""
