"""The keys kept for parts not built yet are named when set, and only then."""

from swimstream.config import parse_config, unbuilt_settings
from tests.config.documents import document


def test_only_keys_set_to_another_value_than_their_default_are_named() -> None:
    assert unbuilt_settings(parse_config(document(), {})) == []
    defaults = document(mesh={"listen": "0.0.0.0:7001", "peer_timeout": "5s"})
    assert unbuilt_settings(parse_config(defaults, {})) == []
    config = parse_config(
        document(
            mesh={"members": ["10.0.0.1:7001", "10.0.0.2:7001"], "peer_timeout": "10s"},
            store={"standby": 2},
        ),
        {},
    )
    assert unbuilt_settings(config) == [
        ("mesh.members", "10.0.0.1:7001, 10.0.0.2:7001", "no instance dials another"),
        ("mesh.peer_timeout", "10.0", "no peer is watched"),
        ("store.standby", "2", "no standby replicas run"),
    ]
