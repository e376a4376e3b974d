"""`/ws/jobs/<id>/` of a queued job: a scheduler pass sends one `job.queue_moved`, and each
queued job's page reads its own reason and sends it only when it changed."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User

from portal.jobs.models import Job
from portal.jobs.scheduling import schedule_pass
from tests.conftest import Broker
from tests.consumers.support import open_socket, session_headers
from tests.factories import make_attempt, make_job
from tests.jobs.helpers import node
from workers.messages import node_queue

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("isolated_channel_layer"),
]


def reason_of(job: Job) -> str:
    job.refresh_from_db(fields=["state_reason"])
    return job.state_reason


def test_a_pass_tells_only_the_page_whose_reason_changed(owner: User) -> None:
    # Both wait for a node of 8 CPU slots in their pool; neither pool has one.
    moving = make_job(owner, pool="a", procs_per_node=8)
    still = make_job(owner, pool="b", procs_per_node=8)
    running = make_job(owner, state=Job.State.RUNNING)
    make_attempt(running)
    assert schedule_pass() == 0
    before = reason_of(moving)
    headers = session_headers(owner)

    async def scenario() -> None:
        sockets = {
            job.pk: await open_socket(f"/ws/jobs/{job.pk}/", headers)
            for job in (moving, still, running)
        }
        try:
            for socket in sockets.values():
                assert (await socket.receive_json_from(timeout=5))["type"] == "state"
            # A large enough node joins pool a, draining: only `moving`'s sentence names it.
            await sync_to_async(node)(pool="a", cpu_slots=8, is_draining=True)
            assert await sync_to_async(schedule_pass)() == 0
            after = await sync_to_async(reason_of)(moving)
            assert after != before
            state = await sockets[moving.pk].receive_json_from(timeout=5)
            assert state == {
                "type": "state",
                "job": moving.pk,
                "name": moving.name,
                "state": "queued",
                "reason": after,
                "attempt": None,
                "team": None,
            }
            assert await sockets[still.pk].receive_nothing(timeout=0.5)
            assert await sockets[running.pk].receive_nothing(timeout=0.2)
            assert await sockets[moving.pk].receive_nothing(timeout=0.2)
        finally:
            for socket in sockets.values():
                await socket.disconnect()

    async_to_sync(scenario)()


def test_a_placed_job_page_hears_of_it_once(owner: User, broker: Broker) -> None:
    job = make_job(owner, procs_per_node=2)
    # Still waits after the pass, so the pass rewrites its reason and sends the queue event.
    behind = make_job(owner, procs_per_node=8)
    assert schedule_pass() == 0
    headers = session_headers(owner)

    async def scenario() -> None:
        socket = await open_socket(f"/ws/jobs/{job.pk}/", headers)
        try:
            first = await socket.receive_json_from(timeout=5)
            assert first["state"] == "queued"
            worker = await sync_to_async(node)(cpu_slots=2)
            assert await sync_to_async(schedule_pass)() == 1
            placed = await socket.receive_json_from(timeout=5)
            assert placed["state"] == "scheduled"
            # The queue event found the job placed: no second message for the same change.
            assert await socket.receive_nothing(timeout=0.5)
            assert len(await sync_to_async(broker.take)(node_queue(worker.name))) == 1
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()
    behind.refresh_from_db()
    assert behind.state == Job.State.QUEUED
    assert behind.state_reason.endswith("Position 1 of 1 in the queue.")
