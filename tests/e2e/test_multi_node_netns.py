"""A 2 nodes x 2 processes job on two node agents that each live in a network namespace of
their own, on their own address, so a rendezvous or a Gloo socket on 127.0.0.1 cannot work
by accident: inside a namespace, 127.0.0.1 is that namespace's own loopback.

The namespaces hang off a bridge that this test creates, on a private /24 that exists only
there (10.213.7.0/24); the bridge's own address is where a forwarder relays to the stack's
Redis on the root namespace's loopback. No packet leaves this machine. Needs root and
`ip netns`; without them the test skips and says why."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from portal.accounts.services import api_token_create
from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from portal.cluster.services import node_set_draining
from portal.jobs.models import Attempt, Job, MetricPoint, Placement
from tests.e2e.agents import NodeAgent, TcpForwarder, iris_2x2_body, others_gone
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
timing = logging.getLogger("tests.e2e.timing")

SUBNET = "10.213.7"
BRIDGE_ADDRESS = f"{SUBNET}.1"


@dataclass(frozen=True)
class Namespace:
    name: str
    ifname: str  # its end of the veth, inside the namespace
    address: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _cannot_run() -> str | None:
    if os.geteuid() != 0:
        return f"network namespaces need root (this test runs as uid {os.geteuid()})"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"ty-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@contextmanager
def _namespaces(count: int) -> Iterator[list[Namespace]]:
    """`count` namespaces on one bridge in the root namespace, each with lo and a veth up."""
    token = uuid.uuid4().hex[:5]
    bridge = f"tybr{token}"
    made: list[Namespace] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for index in range(count):
            letter = "ab"[index]
            namespace = Namespace(
                name=f"ty-{letter}-{token}",
                ifname=f"tyn{letter}{token}",
                address=f"{SUBNET}.{index + 2}",
            )
            outside = f"tyr{letter}{token}"
            _ip("netns", "add", namespace.name)
            made.append(namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", namespace.ifname)
            _ip("link", "set", namespace.ifname, "netns", namespace.name)
            _ip("link", "set", outside, "master", bridge)
            _ip("link", "set", outside, "up")
            inside = ("netns", "exec", namespace.name, "ip")
            _ip(*inside, "addr", "add", f"{namespace.address}/24", "dev", namespace.ifname)
            _ip(*inside, "link", "set", namespace.ifname, "up")
            _ip(*inside, "link", "set", "lo", "up")
        yield made
    finally:
        # Deleting a namespace deletes its end of the veth, and with it the pair.
        for namespace in made:
            subprocess.run(["ip", "netns", "del", namespace.name], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def _redis_url_via(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{BRIDGE_ADDRESS}:{port}" if credentials else f"{BRIDGE_ADDRESS}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def test_a_two_node_job_runs_across_network_namespaces_on_their_own_addresses(
    stack: Stack,
) -> None:
    reason = _cannot_run()
    if reason:
        pytest.skip(f"cannot run agents in network namespaces: {reason}")
    catalog_ensure_builtins()
    token = api_token_create(user=make_user("researcher"), name="e2e").plaintext
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=60,
        what="the stack's node to register",
    )
    # Only the namespaced agents may take the job.
    node_set_draining(node=Node.objects.get(name=stack.node_name), draining=True)
    redis = urlsplit(stack.env["REDIS_URL"])
    agents: list[NodeAgent] = []
    with ExitStack() as cleanup:
        namespaces = cleanup.enter_context(_namespaces(2))
        forwarder = cleanup.enter_context(
            TcpForwarder(
                listen=(BRIDGE_ADDRESS, 0),
                target=(redis.hostname or "127.0.0.1", redis.port or 6379),
            )
        )
        redis_url = _redis_url_via(stack.env["REDIS_URL"], forwarder.port)
        for index, namespace in enumerate(namespaces):
            env = {**stack.env, "REDIS_URL": redis_url, "TRAINYARD_NODE_IFNAME": namespace.ifname}
            if index == 0:
                env["TRAINYARD_NODE_ADDRESS"] = namespace.address
            # The other finds its address itself, from the route to Redis's host.
            agent = NodeAgent(
                name=f"e2e-ns{index}-{uuid.uuid4().hex[:6]}",
                state_dir=stack.state_dir,
                env=env,
                prefix=("ip", "netns", "exec", namespace.name),
            )
            agents.append(agent)
            agent.start()
            cleanup.callback(agent.stop)

        def logs() -> str:
            return "\n".join([stack.logs(), *(a.tail() for a in agents)])

        try:
            wait_for(
                lambda: (
                    Node.objects.filter(
                        name__in=[a.name for a in agents], state=Node.State.ONLINE
                    ).count()
                    == 2
                ),
                timeout=60,
                what="both namespaced agents to register",
            )
            addresses = dict(
                Node.objects.filter(name__in=[a.name for a in agents]).values_list(
                    "name", "address"
                )
            )
            assert addresses == {
                a.name: ns.address for a, ns in zip(agents, namespaces, strict=True)
            }

            wait_for(
                lambda: others_gone(stack.node_name, *(a.name for a in agents)),
                timeout=30,
                what="agents of earlier tests to be offline",
            )
            started = time.monotonic()
            response = httpx.post(
                f"{stack.base_url}/api/v1/jobs/",
                json=iris_2x2_body("iris 2x2 across namespaces"),
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            job_id = response.json()["id"]
            wait_for(lambda: Job.objects.get(pk=job_id).is_terminal, timeout=300, what="the job")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from exc
        finally:
            node_set_draining(node=Node.objects.get(name=stack.node_name), draining=False)
        job = Job.objects.get(pk=job_id)
        assert job.state == Job.State.SUCCEEDED, f"{job.state_reason}\n{logs()}"
        timing.warning("2x2 job across namespaces finished in %.1fs", time.monotonic() - started)

    attempt = Attempt.objects.get(job=job)
    assert attempt.master_addr in {ns.address for ns in namespaces}
    placed = set(Placement.objects.filter(attempt=attempt).values_list("node__name", flat=True))
    assert placed == {a.name for a in agents}
    val = list(
        MetricPoint.objects.filter(attempt=attempt, split=MetricPoint.Split.VAL).order_by("seq")
    )
    assert [p.epoch for p in val] == list(range(1, 41))
    assert val[-1].accuracy is not None and val[-1].accuracy >= 0.9
