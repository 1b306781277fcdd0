"""custody: evidence ingestion with a tamper-evident chain of custody."""

__version__ = "0.1.0"
