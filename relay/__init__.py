"""relay: an SMTP submission relay with an admin HTTP API, on trio and PostgreSQL."""

__version__ = "0.1.0"
