"""`/ws/dashboard/`: a summary on connect, and a fresh one after the cluster changes."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User

from portal.cluster.services import node_heartbeat
from portal.jobs.events import job_state_changed
from portal.jobs.models import Job
from tests.consumers.support import close_code, open_socket, receive_until, session_headers
from tests.factories import make_heartbeat, make_job, make_node

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("isolated_channel_layer"),
]


def test_it_closes_an_anonymous_socket_with_4401() -> None:
    assert async_to_sync(close_code)("/ws/dashboard/", session_headers(None)) == 4401


def test_a_state_change_pushes_a_new_summary_to_every_dashboard(
    owner: User, outsider: User
) -> None:
    make_node(cpu_slots=2)
    job = make_job(outsider)
    headers = {user: session_headers(user) for user in (owner, outsider)}

    def cancel() -> None:
        Job.objects.filter(pk=job.pk).update(state=Job.State.CANCELLED)
        job.refresh_from_db()
        job_state_changed(job)

    async def scenario() -> None:
        sockets = {user: await open_socket("/ws/dashboard/", h) for user, h in headers.items()}
        try:
            for socket in sockets.values():
                first = await receive_until(socket, "summary")
                assert first["summary"]["queue"]["queued"] == 1
            await sync_to_async(cancel)()
            for user, socket in sockets.items():
                pushed = (await receive_until(socket, "summary"))["summary"]
                assert pushed["queue"]["queued"] == 0
                # Each socket's summary is its own user's: the outsider's job is theirs only.
                assert [row["id"] for row in pushed["mine"]] == []
                assert pushed["names_shown"] is False, user
        finally:
            for socket in sockets.values():
                await socket.disconnect()

    async_to_sync(scenario)()


def test_a_heartbeat_pushes_a_new_summary(owner: User) -> None:
    def beat() -> None:
        node_heartbeat(entry=make_heartbeat("fresh-node", cpu_slots=6))

    headers = session_headers(owner)

    async def scenario() -> None:
        socket = await open_socket("/ws/dashboard/", headers)
        try:
            first = await receive_until(socket, "summary")
            assert first["summary"]["totals"]["cpu_slots"] == 0
            await sync_to_async(beat)()
            pushed = await receive_until(socket, "summary")
            assert pushed["summary"]["totals"]["cpu_slots"] == 6
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()
