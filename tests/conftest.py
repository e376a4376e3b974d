"""Personas shared by every test: owner, teammate (same team), outsider and admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser

from tests.factories import make_team, make_user


@pytest.fixture
def owner(db: None) -> AbstractUser:
    return make_user("owner")


@pytest.fixture
def teammate(db: None, owner: AbstractUser) -> AbstractUser:
    user = make_user("teammate")
    make_team("vision", owner, user)
    return user


@pytest.fixture
def outsider(db: None) -> AbstractUser:
    return make_user("outsider")


@pytest.fixture
def admin_user(db: None) -> AbstractUser:
    return make_user("admin", is_staff=True)
