"""The web package exports exactly the server, the health protocol and its report."""

import swimstream.web
from swimstream.web import HealthProvider, HealthReport
from tests.web.harness import SettableHealth


def test_all_is_exactly_the_intended_names() -> None:
    assert swimstream.web.__all__ == ["HealthProvider", "HealthReport", "WebServer"]


def test_a_service_implements_the_health_protocol_structurally() -> None:
    provider: HealthProvider = SettableHealth()
    assert provider.health() == HealthReport(True, {"plane": "running"})
    assert HealthReport(False).checks == {}
