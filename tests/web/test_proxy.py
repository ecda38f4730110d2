"""Requests through a reverse proxy Bordin does not trust answer 503 (web.guard.proxy)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

HEADERS = [
    {"HTTP_X_FORWARDED_FOR": "203.0.113.9"},
    {"HTTP_X_FORWARDED_PROTO": "https"},
    {"HTTP_X_FORWARDED_HOST": "bordin.example.org"},
    {"HTTP_FORWARDED": "for=203.0.113.9"},
    {"HTTP_X_REAL_IP": "203.0.113.9"},
]


@pytest.mark.parametrize("extra", HEADERS)
def test_proxy_headers_without_a_trusted_address_answer_503(
    db: None, settings: Any, extra: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    settings.DEBUG = False
    settings.BORDIN_TRUST_X_FORWARDED_FOR = False
    with caplog.at_level(logging.ERROR, logger="bordin.proxy"):
        response = Client(**extra).get("/login/")
    assert response.status_code == 503
    assert "BORDIN_TRUST_X_FORWARDED_FOR" in response.content.decode()
    assert "BORDIN_TRUST_X_FORWARDED_FOR=true" in caplog.text


def test_trusted_proxy_without_x_forwarded_for_answers_503(db: None, settings: Any) -> None:
    settings.DEBUG = False
    settings.BORDIN_TRUST_X_FORWARDED_FOR = True
    assert Client(HTTP_X_FORWARDED_PROTO="https").get("/login/").status_code == 503
    trusted = Client(HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert trusted.get("/login/").status_code == 200


def test_no_proxy_and_direct_public_clients_are_served(db: None, settings: Any) -> None:
    settings.DEBUG = False
    settings.BORDIN_TRUST_X_FORWARDED_FOR = False
    assert Client().get("/login/").status_code == 200
    # A header sent straight from the internet is no proxy of ours: ignored, not refused.
    direct = Client(REMOTE_ADDR="93.184.216.34", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert direct.get("/login/").status_code == 200
