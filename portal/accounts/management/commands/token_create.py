"""`python manage.py token_create --user NAME`: issue a personal access token for a script.

The plaintext token goes to stdout and nothing else does, so `TOKEN=$(... token_create ...)`
captures exactly the token. It is shown this once; only its digest is stored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.accounts.models import ApiToken
from portal.accounts.services import api_token_create

MAX_DAYS = 3650


class Command(BaseCommand):
    help = "Create a personal access token for a user and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username the token acts as.")
        parser.add_argument("--name", default="cli", help="A label to recognise the token by.")
        parser.add_argument(
            "--scope",
            choices=[choice.value for choice in ApiToken.Scope],
            default=ApiToken.Scope.WRITE.value,
            help="read: GET only; write: everything the user may do (default).",
        )
        parser.add_argument(
            "--days", type=int, default=90, help=f"Days until it expires, 1 to {MAX_DAYS}."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: int = options["days"]
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}.")
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["user"]})
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {options['user']!r}.") from exc
        if not user.is_active:
            raise CommandError(f"User {options['user']!r} is inactive; its tokens would not work.")
        issued = api_token_create(
            user=user, name=options["name"], scope=options["scope"], expires_in=timedelta(days=days)
        )
        self.stdout.write(issued.plaintext)
        self.stderr.write(
            f"Created {options['scope']} token {issued.token} for {options['user']}, expiring "
            f"{issued.token.expires_at:%Y-%m-%d %H:%M} UTC. It will not be shown again."
        )
