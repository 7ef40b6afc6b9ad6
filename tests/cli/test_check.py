"""``swimstream check`` as users run it: exit 2 naming the bad key, exit 0 when fine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
app: towers
broker: {kind: kafka, bootstrap: "localhost:9092"}
agents:
  device: {class: examples.towers.app:Device, route: /device/:id}
  tower: {class: examples.towers.app:Tower, route: /tower/:id}
sources:
  - {topic: readings, route: "/device/{key}", lane: reading}
sinks:
  - {publish: alerts, topic: device-alerts}
"""


def run_check(
    tmp_path: Path, text: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "app.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "swimstream", "check", "--config", str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_valid_config_passes(tmp_path: Path) -> None:
    result = run_check(tmp_path, GOOD)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path / 'app.yaml'}: ok\n"


@pytest.mark.parametrize(
    ("change", "key_path", "problem"),
    [
        (("bootstrap:", "bootsrap:"), "broker.bootsrap", "did you mean 'bootstrap'"),
        (("kind: kafka", "kind: kafak"), "broker.kind", "kafak"),
        (("{key}", "{paylod.device}"), "sources[0].route", "unknown placeholder {paylod.device}"),
        (("/device/{key}", "/devices/{key}"), "sources[0].route", "reaches no agent route"),
        (("app:Device", "app:Nope"), "agents.device.class", "Nope"),
        (
            ("examples.towers.app:Device", "swimstream:Agent"),
            "agents.device.class",
            "swimstream:Agent is the base class of agents, not an agent",
        ),
        (
            ("examples.towers.app:Device", "collections:OrderedDict"),
            "agents.device.class",
            "collections:OrderedDict is not an agent class",
        ),
        (("lane: reading", "lane: status"), "sources[0].lane", "command lane"),
        (
            ("{publish: alerts, topic: device-alerts}", '{from: "/device/:id#reading", topic: t}'),
            "sinks[0].from",
            "is a command lane",
        ),
        (("app: towers", "app: towers\nprocessing: sometimes"), "processing", "sometimes"),
        (("localhost:9092", "${BOOTSTRAP}"), "broker.bootstrap", "BOOTSTRAP is not set"),
        (("topic: device-alerts", "topic: towers.changelog"), "sinks[0].topic", "changelog"),
        (
            (
                'broker: {kind: kafka, bootstrap: "localhost:9092"}',
                'broker: {kind: pulsar, service_url: "pulsar://h:6650"}\nstore: {durable: true}',
            ),
            "store.durable",
            "needs a Kafka broker",
        ),
        (
            ('"localhost:9092"}', '"localhost:9092", partitions: yes}'),
            "broker.partitions",
            "expected an integer, got a boolean (True)",
        ),
        (
            ('"localhost:9092"}', '"localhost:9092", settings: {acks: all}}'),
            "broker.settings['acks']",
            "set by swimstream",
        ),
        (
            ('"localhost:9092"}', '"localhost:9092", settings: {linger.mss: 5}}'),
            "broker.settings['linger.mss']",
            "unknown librdkafka property; did you mean 'linger.ms'?",
        ),
        (
            ('"localhost:9092"}', '"localhost:9092", settings: {compression.type: zip}}'),
            "broker.settings['compression.type']",
            'librdkafka refuses the value: Invalid value "zip"',
        ),
        (
            (
                '"localhost:9092"}',
                '"localhost:9092", settings: {security.protocol: SASL_SSL, '
                "sasl.mechanism: PLAIN, sasl.username: u}}",
            ),
            "broker.settings",
            "librdkafka refuses these settings together: sasl.username and sasl.password "
            "must be set",
        ),
        (
            ("sinks:\n  - {publish: alerts, topic: device-alerts}", "sinks: &s [*s]"),
            "sinks[0]",
            "a YAML alias here names a value that contains it (a recursive anchor)",
        ),
    ],
)
def test_a_broken_config_exits_2_naming_the_key_path(
    tmp_path: Path, change: tuple[str, str], key_path: str, problem: str
) -> None:
    old, new = change
    assert old in GOOD
    result = run_check(tmp_path, GOOD.replace(old, new, 1))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert key_path in result.stderr, result.stderr
    assert problem in result.stderr, result.stderr


def test_a_missing_class_is_reported_with_the_problems_of_other_keys(tmp_path: Path) -> None:
    """The classes of valid agent entries are imported even when other keys are wrong,
    so one pass names both (it named the route only, then the class at the next run)."""
    text = GOOD.replace("app:Device", "app:Nope").replace(
        "sinks:", '  - {topic: readings, route: "/devices/{key}", lane: reading}\nsinks:'
    )
    result = run_check(tmp_path, text)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert lines[0].endswith("app.yaml: 2 problems"), result.stderr
    assert "sources[1].route: /devices/{key} reaches no agent route" in lines[1], result.stderr
    assert "agents.device.class: cannot import 'examples.towers.app:Nope'" in lines[2]


def test_a_config_read_from_a_pipe_gets_every_problem_named(tmp_path: Path) -> None:
    """`check --config <(envsubst < app.yaml)`, or /dev/stdin: the file was read again for
    the agent classes beside the other problems, and a pipe gives nothing the second time."""
    text = GOOD.replace("app:Device", "app:Nope") + "processing: {comit_interval: 1s}\n"
    result = subprocess.run(
        [sys.executable, "-m", "swimstream", "check", "--config", "/dev/stdin"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines()[1:] == [
        "  processing.comit_interval: unknown key; did you mean 'commit_interval'?",
        "  agents.device.class: cannot import 'examples.towers.app:Nope' "
        "('examples.towers.app' has no attribute 'Nope')",
    ]


def test_run_names_the_same_problems_as_check(tmp_path: Path) -> None:
    """`run` named the route only, and the class that does not import at the next try."""
    text = GOOD.replace("app:Device", "app:Nope").replace(
        "sinks:", '  - {topic: readings, route: "/devices/{key}", lane: reading}\nsinks:'
    )
    path = tmp_path / "app.yaml"
    path.write_text(text)
    result = swimstream("run", "--config", str(path), "--log-format", "text")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"swimstream: {path}: sources[1].route: /devices/{{key}} reaches no agent route "
        "(/device/:id, /tower/:id)",
        f"swimstream: {path}: agents.device.class: cannot import 'examples.towers.app:Nope' "
        "('examples.towers.app' has no attribute 'Nope')",
    ], result.stderr


@pytest.mark.parametrize(
    ("elsewhere", "problem"),
    [
        ("processing: sometimes", "processing.guarantee: expected 'exactly-once'"),
        ("web: {listen: 9001}", "web.listen: expected a string, got 9001"),
        ("store: {standby: -1}", "store.standby: must be at least 0"),
        ("mesh: {instance_id: 'a b'}", "mesh.instance_id: "),
        ("dead_letter: 'a b'", "dead_letter: 'a b' is not a topic name"),
        ("broker: {kind: kafka, bootstrap: k, settings: {linger.mss: 5}}", "broker.settings["),
    ],
)
def test_the_lanes_sources_name_are_checked_beside_problems_in_parts_they_do_not_read(
    tmp_path: Path, elsewhere: str, problem: str
) -> None:
    """A typo under `processing` (or `web`, `store`, `mesh`, `dead_letter`, a client
    setting) hid an unknown source lane and an undeclared publish name until it was fixed,
    though those checks read only agents, sources and sinks."""
    text = GOOD.replace("lane: reading", "lane: nope").replace(
        "sinks:\n  - {publish: alerts, topic: device-alerts}\n", "sinks: []\n"
    )
    if elsewhere.startswith("broker:"):
        text = text.replace('broker: {kind: kafka, bootstrap: "localhost:9092"}', elsewhere)
    else:
        text += elsewhere + "\n"
    result = run_check(tmp_path, text)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert lines[0].endswith("app.yaml: 3 problems"), result.stderr
    assert lines[1].startswith("  " + problem), result.stderr
    assert lines[2].startswith(
        "  sources[0].lane: agents.device (examples.towers.app:Device) has no lane 'nope'"
    ), result.stderr
    assert lines[3].startswith("  agents.device.class: Device calls self.publish('alerts')"), (
        result.stderr
    )


@pytest.mark.parametrize(
    ("elsewhere", "problem"),
    [
        ('mesh: {listen: "0.0.0.0:9001"}\nweb: {listen: "0.0.0.0:9002", tokn: x}', "web.tokn: "),
        ("store: {durable: false, standby: -1}", "store.standby: must be at least 0"),
    ],
)
def test_the_checks_beside_do_not_take_a_wrong_part_for_its_defaults(
    tmp_path: Path, elsewhere: str, problem: str
) -> None:
    """The checks run beside problems in a part did so with that part at its defaults,
    and named what the defaults would do: web's port 9001 clashing with the mesh's (the
    user's web port is 9002), a roundrobin assignor with durable state (the user's state
    is not durable)."""
    text = GOOD.replace(
        '  - {topic: readings, route: "/device/{key}", lane: reading}\n',
        '  - {topic: readings, route: "/device/{key}", lane: reading}\n'
        '  - {topic: more-readings, route: "/device/{key}", lane: reading}\n',
    )
    if elsewhere.startswith("store:"):
        text = text.replace(
            'bootstrap: "localhost:9092"}',
            'bootstrap: "localhost:9092", settings: {partition.assignment.strategy: roundrobin}}',
        )
    result = run_check(tmp_path, text + elsewhere + "\n")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert lines[0].endswith("app.yaml: 1 problem"), result.stderr
    assert lines[1].startswith("  " + problem), result.stderr


def test_an_agent_whose_own_entry_is_wrong_is_not_imported(tmp_path: Path) -> None:
    text = GOOD.replace("app:Device", "app:Nope").replace("app:Tower", "app:Gone")
    result = run_check(tmp_path, text.replace("route: /tower/:id", "route: tower"))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert lines[1:] == [
        "  agents.tower.route: 'tower' must start with '/'",
        "  agents.device.class: cannot import 'examples.towers.app:Nope' "
        "('examples.towers.app' has no attribute 'Nope')",
    ], result.stderr


def test_an_environment_variable_fills_a_placeholder(tmp_path: Path) -> None:
    result = run_check(
        tmp_path, GOOD.replace("localhost:9092", "${BOOTSTRAP}"), {"BOOTSTRAP": "k:9092"}
    )
    assert result.returncode == 0, result.stderr


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    result = run_check(tmp_path, GOOD.replace("agents:", "agents: [", 1))
    assert result.returncode == 2
    assert "line " in result.stderr and "column" in result.stderr


def swimstream(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``swimstream`` command, run from the checkout."""
    return subprocess.run(
        [sys.executable, "-m", "swimstream", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_reads_well() -> None:
    result = swimstream("--help")
    assert result.returncode == 0
    for word in ("run", "check", "demo", "exit status"):
        assert word in result.stdout


def test_run_with_a_config_it_cannot_read_exits_2_naming_the_file_once(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = swimstream("run", "--config", str(missing), "--log-format", "text")
    assert result.returncode == 2
    assert result.stderr.strip() == f"swimstream: {missing}: cannot read: No such file or directory"


def test_run_with_a_recursive_yaml_alias_exits_2_naming_the_key_path(tmp_path: Path) -> None:
    """It crashed with a RecursionError traceback instead."""
    path = tmp_path / "app.yaml"
    source = 'sources:\n  - {topic: readings, route: "/device/{key}", lane: reading}\n'
    assert source in GOOD
    path.write_text(GOOD.replace(source, "sources: &s [*s]\n"))
    result = swimstream("run", "--config", str(path), "--log-format", "text")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"swimstream: {path}: sources[0]: a YAML alias here names a value that "
        "contains it (a recursive anchor), so the value would be infinitely deep"
    )


def test_run_refuses_a_setting_librdkafka_does_not_know_before_connecting(
    tmp_path: Path,
) -> None:
    """`check` said ok, and `run` failed as it made its first client (or, as here with no
    broker, waited for one first)."""
    path = tmp_path / "app.yaml"
    text = GOOD.replace('"localhost:9092"}', '"127.0.0.1:1", settings: {linger.mss: 5}}')
    path.write_text(text)
    result = swimstream("run", "--config", str(path), "--log-format", "text")
    assert result.returncode == 2, result.stderr
    assert (
        f"swimstream: {path}: broker.settings['linger.mss']: unknown librdkafka property; "
        "did you mean 'linger.ms'?"
    ) in result.stderr
    assert "connecting to the broker" not in result.stderr


def test_a_secret_from_the_environment_that_is_not_utf8_is_a_config_problem(
    tmp_path: Path,
) -> None:
    """Python reads the variable's bytes as lone surrogates, which confluent-kafka
    cannot encode: ``check`` (and ``run``) stopped with a SystemError traceback."""
    text = GOOD.replace(
        'bootstrap: "localhost:9092"}',
        'bootstrap: "localhost:9092", settings: {sasl.password: "${KAFKA_PASSWORD}"}}',
    )
    result = run_check(tmp_path, text, env={"KAFKA_PASSWORD": "pass\udcffword"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[1:] == [
        "  broker.settings['sasl.password']: not UTF-8 text: the environment variable it "
        "takes holds other bytes (the client library takes UTF-8 only)"
    ]
