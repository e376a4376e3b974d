"""`/ws/jobs/`: state changes for the jobs on a user's list, and nobody else's."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User

from portal.accounts.models import Team
from portal.jobs.events import (
    STATES_PER_EVENT,
    job_state_changed,
    job_state_event,
    job_states_changed,
)
from portal.jobs.models import Job
from tests.consumers.support import close_code, open_socket, session_headers
from tests.factories import make_job

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("isolated_channel_layer"),
]


def test_it_closes_an_anonymous_socket_with_4401() -> None:
    assert async_to_sync(close_code)("/ws/jobs/", session_headers(None)) == 4401


def test_the_owner_and_admins_hear_a_state_change_and_outsiders_do_not(
    owner: User, outsider: User, admin_user: User
) -> None:
    job = make_job(owner, name="iris-mlp")
    headers = {user: session_headers(user) for user in (owner, outsider, admin_user)}

    def finish() -> None:
        Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED, state_reason="exit code 1")
        job.refresh_from_db()
        job_state_changed(job)

    async def scenario() -> None:
        sockets = {user: await open_socket("/ws/jobs/", h) for user, h in headers.items()}
        try:
            await sync_to_async(finish)()
            expected = {
                "type": "state",
                "job": job.pk,
                "name": "iris-mlp",
                "state": "failed",
                "reason": "exit code 1",
            }
            assert await sockets[owner].receive_json_from(timeout=5) == expected
            assert await sockets[admin_user].receive_json_from(timeout=5) == expected
            assert await sockets[outsider].receive_nothing(timeout=0.5)
        finally:
            for socket in sockets.values():
                await socket.disconnect()

    async_to_sync(scenario)()


def test_a_teammate_hears_a_team_jobs_state_change(
    owner: User, teammate: User, outsider: User
) -> None:
    team = Team.objects.get(members=teammate)
    job = make_job(owner, team=team, name="team-run")
    headers = {user: session_headers(user) for user in (teammate, outsider)}

    def start() -> None:
        Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING)
        job.refresh_from_db()
        job_state_changed(job)

    async def scenario() -> None:
        sockets = {user: await open_socket("/ws/jobs/", h) for user, h in headers.items()}
        try:
            await sync_to_async(start)()
            message = await sockets[teammate].receive_json_from(timeout=5)
            assert (message["job"], message["state"]) == (job.pk, "running")
            assert await sockets[outsider].receive_nothing(timeout=0.5)
        finally:
            for socket in sockets.values():
                await socket.disconnect()

    async_to_sync(scenario)()


def test_a_batch_of_changes_reaches_the_list_as_one_message_per_job(
    owner: User, outsider: User
) -> None:
    mine = [make_job(owner, state=Job.State.SCHEDULED) for _ in range(STATES_PER_EVENT + 2)]
    theirs = make_job(outsider, state=Job.State.SCHEDULED)
    headers = session_headers(owner)

    def place_all() -> None:
        # One fan-out, as a scheduler pass sends it: more jobs than one list event carries.
        job_states_changed(
            (job_state_event(job, attempt_id=None), job.owner_id) for job in [*mine, theirs]
        )

    async def scenario() -> None:
        socket = await open_socket("/ws/jobs/", headers)
        try:
            await sync_to_async(place_all)()
            heard = [await socket.receive_json_from(timeout=5) for _ in mine]
            assert [(m["type"], m["job"], m["state"]) for m in heard] == [
                ("state", job.pk, "scheduled") for job in mine
            ]
            assert await socket.receive_nothing(timeout=0.5)
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()
