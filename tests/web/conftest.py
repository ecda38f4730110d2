"""Fixtures for the web tests (healthchecks style: fixed users, one outsider).

The database comes from ``BORDIN_TEST_DB``: ``sqlite`` (default, in memory) or ``postgres``
(``postgres://postgres@127.0.0.1:5432/test``; pytest-django creates ``test_test``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest

_DB_URLS = {
    "sqlite": "sqlite://:memory:",
    # BORDIN_TEST_PG_URL lets parallel runs use their own database (pytest-django adds "test_").
    "postgres": os.environ.get("BORDIN_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/test"),
}


def pytest_configure(config: pytest.Config) -> None:
    backend = os.environ.get("BORDIN_TEST_DB", "sqlite")
    if backend not in _DB_URLS:
        raise pytest.UsageError(f"BORDIN_TEST_DB must be one of {sorted(_DB_URLS)}")
    os.environ["DATABASE_URL"] = _DB_URLS[backend]
    os.environ.setdefault("BORDIN_SECRET_KEY", "tests-only-not-a-secret")
    # Free text is encrypted at rest in every test (and in the crash test's server), with a
    # key that protects nothing real. tests/web/test_data_protection.py changes keys itself.
    os.environ.setdefault("BORDIN_FIELD_KEYS", "aRtLv7IdXHap8FXSkkYoiEUR5VQDKDWjZDJYcnVLO5I=")
    # No check-in lookup limit (the fuzz tests try hundreds of tokens from one address);
    # tests/web/test_client_pages.py turns it on where it is tested.
    os.environ.setdefault("BORDIN_CHECKIN_RATE_LIMIT", "0")
    # WhiteNoise serves STATIC_ROOT; give the tests an existing one of their own.
    os.environ.setdefault("BORDIN_STATIC_ROOT", tempfile.mkdtemp(prefix="bordin-static-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bordin.web.settings")
    import django
    from django.conf import settings

    if not settings.configured or not django.apps.apps.ready:
        django.setup()
    # Fast hashing for tests only.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


PASSWORD = "correct horse battery staple"  # noqa: S105 - test fixture


def make_staff(username: str, clinic: Any, role: str = "therapist") -> Any:
    from django.contrib.auth import get_user_model

    from bordin.web.clinic.models import StaffProfile

    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    StaffProfile.objects.create(user=user, clinic=clinic, role=role)
    return user


@pytest.fixture
def clinic(db: None) -> Any:
    from bordin.web.clinic.models import Clinic

    return Clinic.objects.create(
        name="Harbour Clinic", crisis_contacts="Harbour duty line: 0100 111 222\nOut of hours: 999"
    )


@pytest.fixture
def other_clinic(db: None) -> Any:
    from bordin.web.clinic.models import Clinic

    return Clinic.objects.create(name="Elsewhere Clinic")


@pytest.fixture
def owner(clinic: Any) -> Any:
    """The therapist whose client the tests look at."""
    return make_staff("owner", clinic)


@pytest.fixture
def colleague(clinic: Any) -> Any:
    """Another therapist in the same clinic: sees only their own clients."""
    return make_staff("colleague", clinic)


@pytest.fixture
def admin(clinic: Any) -> Any:
    """The clinic admin: sees every client of the clinic."""
    return make_staff("clinic-admin", clinic, role="clinic_admin")


@pytest.fixture
def outsider(other_clinic: Any) -> Any:
    """A clinic admin of another clinic: must see nothing of ours."""
    return make_staff("outsider", other_clinic, role="clinic_admin")


@pytest.fixture
def supervisor(clinic: Any, owner: Any) -> Any:
    """A supervisor of the owner: reads the owner's clients, changes none of them."""
    user = make_staff("supervisor", clinic, role="supervisor")
    user.staff.supervisees.add(owner)
    return user


@pytest.fixture
def researcher(clinic: Any) -> Any:
    """A researcher of the clinic: de-identified exports only."""
    return make_staff("researcher", clinic, role="researcher")


@pytest.fixture
def client_record(clinic: Any, owner: Any) -> Any:
    from bordin.web.clinic.models import Client

    return Client.objects.create(clinic=clinic, therapist=owner, display_name="Client A")


@pytest.fixture
def episode(client_record: Any) -> Any:
    from bordin.web.clinic.models import Episode

    return Episode.objects.create(client=client_record, start=date.today() - timedelta(days=60))


@pytest.fixture
def goals(episode: Any) -> list[Any]:
    from bordin.web.clinic.models import Goal

    return [
        Goal.objects.create(episode=episode, text="Sleep better", position=0),
        Goal.objects.create(episode=episode, text="See friends again", position=1),
    ]


@pytest.fixture
def add_session(episode: Any) -> Callable[..., Any]:
    """Add the next session to the episode."""
    from bordin.web.clinic.models import Session

    def add(days_ago: int = 1, attendance: str = "attended") -> Any:
        number = episode.sessions.count() + 1
        return Session.objects.create(
            episode=episode,
            number=number,
            date=date.today() - timedelta(days=days_ago),
            attendance=attendance,
        )

    return add


@pytest.fixture
def client() -> Any:
    """pytest-django's test client, except that ``force_login`` also passes the second factor.

    Every real staff session has passed it (``StaffSessionMiddleware`` sends everyone else to
    ``/account/2fa/verify/``). Tests of the second factor use a plain ``django.test.Client``.
    """
    from tests.web.helpers import VerifiedClient

    return VerifiedClient()


@pytest.fixture
def login(client: Any) -> Callable[[Any], Any]:
    def do(user: Any) -> Any:
        client.force_login(user)
        return client

    return do


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Cached fits (e.g. a clinic's trajectory model) must not leak from one test to the next."""
    from django.core.cache import cache

    from bordin.web.checkins import services

    cache.clear()
    services._IMPORTED.clear()  # a rolled-back test's rows may come back with other content
