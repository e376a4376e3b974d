"""`python manage.py seed`: what a fresh Trainyard needs, safe to run on every start.

- the built-in catalog (the Iris dataset and the MLP architecture);
- an admin account when TRAINYARD_ADMIN_USER and TRAINYARD_ADMIN_PASSWORD (or
  TRAINYARD_ADMIN_PASSWORD_FILE) are set, created once and never overwritten, so a password
  changed in the portal stays changed;
- with --register-node, this machine as a node (used by `up` for the local node agent).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import IntegrityError, transaction

from portal.env import env


def _gpu_count() -> int:
    """GPUs NVML can see here; 0 where there is no NVIDIA driver."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver or no library: both mean no GPUs
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


class Command(BaseCommand):
    help = (
        "Create the built-in catalog, the admin from TRAINYARD_ADMIN_USER/_PASSWORD, and "
        "optionally register this machine as a node. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--register-node", metavar="NAME", help="register this machine")
        parser.add_argument(
            "--node-address",
            default="127.0.0.1",
            help="address other nodes use to reach this one (default 127.0.0.1)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from portal.catalog.services import catalog_ensure_builtins

        catalog_ensure_builtins()
        self.stdout.write("built-in catalog is in place")
        self._ensure_admin()
        if options["register_node"]:
            self._register_node(options["register_node"], options["node_address"])

    def _ensure_admin(self) -> None:
        username = env.optional("TRAINYARD_ADMIN_USER")
        password = env.optional("TRAINYARD_ADMIN_PASSWORD")
        if not (username and password):
            self.stdout.write("no TRAINYARD_ADMIN_USER/_PASSWORD: not creating an admin")
            return
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"admin {username!r} already exists; its password is unchanged")
            return
        try:
            with transaction.atomic():
                User.objects.create_superuser(username=username, email="", password=password)
        except IntegrityError:
            # Another seed created it between our check and our insert: same outcome.
            return
        self.stdout.write(f"created admin {username!r}")

    def _register_node(self, name: str, address: str) -> None:
        from portal.cluster.services import node_register

        gpu_count = _gpu_count()
        node = node_register(
            name=name, address=address, cpu_slots=os.cpu_count() or 1, gpu_count=gpu_count
        )
        self.stdout.write(
            f"node {node.name!r} registered on {socket.gethostname()} "
            f"({node.cpu_slots} CPU slots, {node.gpu_count} GPUs)"
        )
