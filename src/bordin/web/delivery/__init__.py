"""Delivery: every questionnaire reaches the client on time (docs/delivery.md)."""
