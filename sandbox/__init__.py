"""Local stand-ins for what segstream talks to: a real Kafka broker, a CRM simulator, a sender."""
