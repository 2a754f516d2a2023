"""The workers' side: fan-out, claiming, lanes, transport, outcomes, health and retention.

Everything here runs in django-q2 workers (or the test's thread through ``django_webhooks.testing``).
"""
