"""Secrets: production refuses to start without real ones, and no template
ships a usable default (with a known SECRET_KEY anyone mints an admin JWT)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
START = "import django; django.setup(); from django.conf import settings; print('started', settings.PRODUCTION)"


def start(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh process with this environment."""
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SIGNING_KEY", "DJANGO_ENV")}
    base.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
        EMAIL_URL="smtp://127.0.0.1:1025",
        **env,
    )
    return subprocess.run([sys.executable, "-c", START], cwd=REPO, env=base, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("secret", ["", "change-me", "build", "django-insecure-" + "x" * 60, "short-but-random-Xq93"])
def test_production_refuses_to_start_without_a_real_secret_key(secret: str) -> None:
    result = start(DJANGO_ENV="production", SECRET_KEY=secret)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_a_weak_jwt_signing_key() -> None:
    result = start(DJANGO_ENV="production", SECRET_KEY=secrets.token_urlsafe(50), JWT_SIGNING_KEY="change-me")
    assert result.returncode != 0
    assert "JWT_SIGNING_KEY must be set" in result.stderr


def test_production_starts_with_real_secrets_and_development_makes_its_own() -> None:
    good = start(DJANGO_ENV="production", SECRET_KEY=secrets.token_urlsafe(50))
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip().endswith("started True")
    dev = start()  # development is the default: the .data/secret_key of a checkout
    assert dev.returncode == 0, dev.stderr
    assert dev.stdout.strip().endswith("started False")


def test_an_unknown_environment_name_is_refused() -> None:
    result = start(DJANGO_ENV="prod")
    assert result.returncode != 0
    assert "DJANGO_ENV must be" in result.stderr


def test_deploy_templates_carry_no_usable_secret() -> None:
    for path in (REPO / "deploy").rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        for line in path.read_text().splitlines():
            match = re.search(r"\b(SECRET_KEY|JWT_SIGNING_KEY)\b\s*[:=]\s*(\S+)", line)
            if match and not line.lstrip().startswith("#"):
                value = match.group(2)
                # Required from the environment (compose's ${VAR:?...}), generated on the
                # spot ($(python3 -c ...)), a build-time value of a development run (the
                # Dockerfile's collectstatic), or a placeholder production refuses to start on.
                refused = start(DJANGO_ENV="production", SECRET_KEY=value).returncode != 0
                assert value.startswith(("${SECRET_KEY:?", "$(")) or "DJANGO_ENV=development" in line or refused, (
                    path.name,
                    line,
                )
    compose = (REPO / "deploy" / "compose.yml").read_text()
    assert "DJANGO_ENV: production" in compose
    assert "DJANGO_ENV=production" in (REPO / "deploy" / "Dockerfile").read_text()


@pytest.mark.parametrize("secret", ["a" * 50, "changeme" * 7, " " * 60, "DJANGO-INSECURE-" + secrets.token_urlsafe(50)])
def test_production_refuses_long_but_weak_secrets(secret: str) -> None:
    result = start(DJANGO_ENV="production", SECRET_KEY=secret)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
