"""Factories and personas shared by the whole suite. Import these; don't copy setup."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from portal.accounts.models import Team
from portal.cluster.models import Node

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


def make_user(username: str | None = None, *, is_staff: bool = False) -> AbstractUser:
    User = get_user_model()
    username = username or f"user{next(_counter)}"
    user: AbstractUser = User.objects.create_user(
        username=username, password=PASSWORD, email=f"{username}@example.test"
    )
    if is_staff:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user


def make_team(name: str, *members: AbstractUser) -> Team:
    team = Team.objects.create(name=name)
    team.members.add(*members)
    return team


def make_node(name: str | None = None, **fields: Any) -> Node:
    defaults: dict[str, Any] = {
        "hostname": "localhost",
        "address": "127.0.0.1",
        "cpu_slots": 4,
        "gpu_count": 0,
        "state": Node.State.ONLINE,
        "last_heartbeat_at": timezone.now(),
    }
    defaults.update(fields)
    return Node.objects.create(name=name or f"node{next(_counter)}", **defaults)
