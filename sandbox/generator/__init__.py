"""An event generator that behaves like a real sender: ``segstream-sandbox generate``."""

from sandbox.generator.ledger import LedgerEntry, read_ledger
from sandbox.generator.sender import EventGenerator, GeneratorConfig, GeneratorSummary

__all__ = ["EventGenerator", "GeneratorConfig", "GeneratorSummary", "LedgerEntry", "read_ledger"]
