"""Where segmentation updates are written: the CRM over HTTP (and, later, a warehouse)."""

from consumer.sink.base import CustomerUpdate, Sink

__all__ = ["CustomerUpdate", "Sink"]
