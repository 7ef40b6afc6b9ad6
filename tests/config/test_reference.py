from collections.abc import Iterator

from pydantic import BaseModel

from swimstream.config import AppConfig, documented_keys, render_reference
from swimstream.config.reference import _nested_model


def models(model: type[BaseModel] = AppConfig) -> Iterator[type[BaseModel]]:
    yield model
    for field in model.model_fields.values():
        inner, _ = _nested_model(field.annotation)
        if inner is not None:
            yield from models(inner)


def test_every_field_has_a_description() -> None:
    for model in models():
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_the_reference_mentions_every_field() -> None:
    reference = render_reference()
    keys = list(documented_keys())
    for model in models():
        for name, field in model.model_fields.items():
            key = field.alias or name
            assert any(k.endswith(key) and f"| `{k}` |" in reference for k in keys), key
    expected = {
        "app",
        "broker.kind",
        "broker.bootstrap",
        "broker.settings",
        "broker.partitioner",
        "agents.<name>.class",
        "agents.<name>.route",
        "sources[].topic",
        "sources[].route",
        "sinks[].from",
        "sinks[].publish",
        "dead_letter",
        "processing.guarantee",
        "processing.idle_timeout",
        "processing.max_active_agents",
        "processing.mailbox_capacity",
        "mesh.listen",
        "mesh.members",
        "mesh.advertise",
        "store.path",
        "web.listen",
    }
    assert expected <= set(keys)
    assert len(keys) == len(set(keys)) == sum(len(m.model_fields) for m in models())


def test_the_reference_shows_types_and_defaults() -> None:
    reference = render_reference()
    assert "| `broker.kind` | `kafka` \\| `pulsar` \\| `embedded` | `kafka` |" in reference
    assert "| `processing.commit_interval` | duration (`250ms`, `5s`, `2m`, `1h`) | `100ms` |" in (
        reference
    )
    assert (
        "| `processing.idle_timeout` | duration (`250ms`, `5s`, `2m`, `1h`) | `5m` |" in reference
    )
    assert "| `agents.<name>.class` | `module:Class` | required |" in reference
    assert "| `mesh.members` | list of host:port | `[]` |" in reference
    assert "| `broker.create_topics` | boolean | `true` |" in reference
    assert "| `broker` | mapping (below) | required |" in reference
    assert "| `dead_letter` | topic name | `<app>.dead-letter` |" in reference
    instance_id = "| `mesh.instance_id` | name (letters, digits, `._-`) | `<app>-<host name>` |"
    assert instance_id in reference
    assert "### `sources[]`" in reference
    assert reference.startswith("## Configuration reference\n")
