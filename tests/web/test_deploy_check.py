"""``manage.py check --deploy`` with production settings reports nothing at all."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

CHECK = (
    "import django; django.setup(); from django.core.management import call_command; "
    "call_command('check', '--deploy', '--fail-level', 'WARNING')"
)


def production_env(tmp_path: Path) -> dict[str, str]:
    """The environment a production install is documented to have (docs/deploy.md)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORDIN_")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bordin.web.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bordin.sqlite3'}",
            "BORDIN_DATA_DIR": str(tmp_path),
            "BORDIN_DEBUG": "false",
            "BORDIN_SECRET_KEY": secrets.token_urlsafe(50),
            "BORDIN_ALLOWED_HOSTS": "bordin.example.org",
            "BORDIN_SECURE_COOKIES": "true",
            "BORDIN_SSL_REDIRECT": "true",
            "BORDIN_BEHIND_PROXY": "true",
            "BORDIN_TRUST_X_FORWARDED_FOR": "true",
            "BORDIN_HSTS_SECONDS": str(365 * 24 * 60 * 60),
            "BORDIN_HSTS_PRELOAD": "true",
            "BORDIN_FIELD_KEYS": Fernet.generate_key().decode(),
        }
    )
    return env


def run_check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHECK],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = run_check(production_env(tmp_path), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output, output
    assert "ERRORS" not in output, output
    assert "System check identified no issues" in output, output


def test_production_without_a_field_key_is_an_error(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["BORDIN_FIELD_KEYS"]
    result = run_check(env, tmp_path)
    assert result.returncode != 0
    assert "bordin.E001" in result.stdout + result.stderr
    env["BORDIN_ALLOW_PLAINTEXT_FREE_TEXT"] = "true"
    allowed = run_check(env, tmp_path)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "bordin.I001" in allowed.stdout + allowed.stderr


def documented_production_env(tmp_path: Path) -> dict[str, str]:
    """The environment file of docs/deploy.md, placeholders filled in."""
    from tests.web.test_proxy_deploy import documented_env

    env = production_env(tmp_path)
    for name in ("BORDIN_HSTS_PRELOAD", "BORDIN_SECURE_COOKIES"):
        del env[name]
    documented = documented_env()
    for name, value in documented.items():
        if value != "..." and name != "DATABASE_URL":
            env[name] = value
    env["BORDIN_STATIC_ROOT"] = str(tmp_path)
    return env


def test_check_deploy_is_clean_with_the_documented_environment(tmp_path: Path) -> None:
    result = run_check(documented_production_env(tmp_path), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output


def test_behind_a_proxy_without_a_trusted_client_address_is_an_error(tmp_path: Path) -> None:
    env = documented_production_env(tmp_path)
    env["BORDIN_TRUST_X_FORWARDED_FOR"] = "false"
    result = run_check(env, tmp_path)
    assert result.returncode != 0
    assert "bordin.E004" in result.stdout + result.stderr
    # `bordin serve` runs the same checks before it starts gunicorn.
    serve = subprocess.run(
        [sys.executable, "-c", "from bordin.web.commands import run_serve; run_serve(port=0)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert serve.returncode != 0
    assert "bordin.E004" in serve.stdout + serve.stderr
