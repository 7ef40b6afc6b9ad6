"""Fixtures for tests/ and integration/: one embedded Kafka and one embedded Pulsar per session.

A broker that cannot start here fails the tests that use it with the broker's log in the
error; it never skips them, because a skipped broker test hides a broken build machine.
The logic lives in :mod:`connectors.embedded`; these fixtures only scope it.
"""

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from connectors.embedded import EmbeddedKafka, EmbeddedPulsar, TopicFactory, unique_topic_name

# Property tests look for wrong answers, not slow ones: an example of 20 ms took 232 on
# this shared machine under load, and hypothesis's 200 ms deadline failed the test.
# The default profile tries the same 100 examples on every machine (derandomize), so CI
# passes or fails as the developer's run did: a property that held for 100 random examples
# once failed CI on the 101st kind. `HYPOTHESIS_PROFILE=thorough` searches at random, with
# 50 times the default count (a test whose @settings sets its own count keeps it); run it
# after changing a property or the code under it.
settings.register_profile("swimstream", deadline=None, derandomize=True)
settings.register_profile("thorough", deadline=None, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "swimstream"))


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedKafka]:
    """A started embedded Kafka (Tansu) shared by the session; stopped at its end."""
    with EmbeddedKafka() as broker:
        yield broker
        broker.ensure_running()  # a broker that died mid-session fails the teardown


@pytest.fixture(scope="session")
def pulsar_broker() -> Iterator[EmbeddedPulsar]:
    """A started embedded Pulsar (pulsar-lite) shared by the session; stopped at its end."""
    with EmbeddedPulsar() as broker:
        yield broker
        broker.ensure_running()


@pytest.fixture
def make_topic(kafka_broker: EmbeddedKafka, request: pytest.FixtureRequest) -> TopicFactory:
    """Creates uniquely named topics on ``kafka_broker``, named after the test."""

    def make(partitions: int = 4, compacted: bool = False) -> str:
        name = unique_topic_name(request.node.name)
        return kafka_broker.create_topic(name, partitions, compacted=compacted)

    return make


INTEGRATION = "integration"
"""The xdist group of the tests that run whole instances (``make test`` runs two
workers): they run one at a time, on one worker, while the other takes the rest."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parts[-2] == INTEGRATION:
            item.add_marker(pytest.mark.xdist_group(INTEGRATION))
