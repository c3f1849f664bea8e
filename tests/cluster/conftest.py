"""Fixtures of the cluster tests: instances over one schema and one Redis, a private Redis, and
Node peers. Redis runs at COSCRIBE_TEST_REDIS_URL (default redis://127.0.0.1:6379/0); each test
works under a key prefix of its own and deletes only those keys at the end. Under CI=true a
missing Redis, redis-server, PostgreSQL or Node fails the run; elsewhere these tests skip and
say how to enable them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.ci import unavailable
from tests.cluster.harness import (
    Cluster,
    PrivateRedis,
    delete_keys,
    new_prefix,
    redis_problem,
    redis_server_binary,
)
from tests.node_peer import NodePeer, require_node

REDIS_URL = os.environ.get("COSCRIBE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

Spawn = Callable[..., Awaitable[list[NodePeer]]]
MakeCluster = Callable[..., Cluster]


@pytest.fixture(scope="session")
def shared_redis_url() -> str:
    """The URL of the shared test Redis, or a skip (a failure under CI=true)."""
    problem = redis_problem(REDIS_URL)
    if problem is not None:
        unavailable(
            f"Redis is not reachable at {REDIS_URL}: {problem}",
            "Start Redis (redis-server) or set COSCRIBE_TEST_REDIS_URL to enable the cluster "
            "tests.",
        )
    return REDIS_URL


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own on a free port; stopped at teardown."""
    if redis_server_binary() is None:
        unavailable(
            "redis-server is not on PATH: the Redis outage tests start one of their own",
            "Install Redis (apt-get install redis-server) to enable them.",
        )
    server = PrivateRedis(tmp_path / "redis")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def make_cluster(
    tmp_path: Path, postgres_schemas, request: pytest.FixtureRequest
) -> Iterator[MakeCluster]:
    """make_cluster(redis_url=None, **settings) -> a Cluster on a new schema (migrated when
    its first instance is made), on the shared Redis unless `redis_url` is given, under a key
    prefix of its own. Every instance is stopped at teardown, then the prefix's keys deleted."""
    made: list[Cluster] = []

    def make(redis_url: str | None = None, **settings: str) -> Cluster:
        url = redis_url if redis_url is not None else request.getfixturevalue("shared_redis_url")
        cluster = Cluster(tmp_path, postgres_schemas.new(), url, new_prefix(), **settings)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop_all()
    for cluster in made:
        if cluster.redis_url is not None and redis_problem(cluster.redis_url) is None:
            delete_keys(cluster.redis_url, cluster.prefix)


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """spawn(n, prefix="peer") -> n started (not connected) Node peers; all closed after the
    test, which fails if any of them reported an uncaught exception."""
    require_node()
    started: list[NodePeer] = []

    async def start(count: int, prefix: str = "peer") -> list[NodePeer]:
        first = len(started)
        peers = await asyncio.gather(
            *(NodePeer.start(f"{prefix}{first + index}") for index in range(count))
        )
        started.extend(peers)
        return list(peers)

    yield start
    await asyncio.gather(*(peer.close() for peer in started))
    for peer in started:
        assert peer.errors() == [], f"{peer.name}: {peer.errors()}\n{peer.stderr}"
