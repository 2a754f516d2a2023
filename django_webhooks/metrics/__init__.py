"""Prometheus metrics (the optional ``metrics`` extra): see docs/monitoring.md."""
