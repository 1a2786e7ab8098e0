"""Brokers and an MQTT probe for the simulator tests. Fixtures:

mosquitto    Debian's mosquitto on a free port with a temp config (skipped, with the
             reason, when the binary is absent; CI installs it)
broker_url   parametrized: the mosquitto URL, then the leaf nats-server's MQTT URL
             (via the `topology` fixture of tests/conftest.py)
probe        an async factory of started `simhelpers.Probe`s, closed at teardown
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from simhelpers import Probe, ProbeFactory, run_mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[str]:
    """Anonymous mosquitto on a free port."""
    with run_mosquitto(tmp_path) as url:
        yield url


@pytest.fixture(params=["mosquitto", "leaf"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """Each broker test runs against mosquitto and against the leaf's MQTT listener."""
    if request.param == "mosquitto":
        return str(request.getfixturevalue("mosquitto"))
    url = request.getfixturevalue("topology").leaf.mqtt_url
    assert url is not None
    return str(url)


@pytest.fixture
async def probe() -> AsyncIterator[ProbeFactory]:
    """`await probe(url, *topics)`: a started, subscribed Probe, closed after the test."""
    made: list[Probe] = []

    async def make(url: str, *topics: str) -> Probe:
        p = Probe(url, f"probe-{len(made)}")
        made.append(p)
        return await p.start(*topics)

    yield make
    for p in reversed(made):
        with contextlib.suppress(Exception):
            await p.close()
