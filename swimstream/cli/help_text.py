"""What ``--help`` says beyond the options: examples and exit statuses per command.

Every command's own help ends with examples and its exit statuses, as ``git`` and
``kafka-console-consumer`` do: a user who typed ``swimstream run --help`` should not have
to go back to the top-level help (or the README) to learn what 2 means.
"""

from __future__ import annotations

DESCRIPTION = """\
swimstream runs stateful agents (digital twins) next to Kafka or Pulsar: every source in
your event stream gets an agent, agents link to each other's lanes, and insights flow
back to the broker. Describe the app in YAML; run one or more instances of it."""

EPILOG = """\
examples:
  swimstream check --config config/towers.yaml      validate a config without connecting
  swimstream run --config config/towers.yaml        run an instance (SIGTERM drains, exits 0)
  swimstream inspect --store data --node /device/7  what the local store holds for an agent
  swimstream demo --duration 20                     embedded broker + simulator + dashboard

Each command's --help has its own examples, as `swimstream run --help`.

exit status: 0 ok (or drained after SIGTERM or Ctrl-C), 1 failure, 2 invalid
configuration or command line."""

COMMANDS: dict[str, str] = {
    "run": """\
examples:
  swimstream run --config app.yaml                    logs as text on a terminal, else JSON
  KAFKA_BOOTSTRAP=kafka:9092 swimstream run -c app.yaml   ${KAFKA_BOOTSTRAP} in the YAML
  swimstream run -c app.yaml --log-format json --log-level warning

exit status: 0 stopped by SIGTERM or SIGINT (after the drain; at once while it waits
for the broker or restores), 1 a failure stopped it (the reason is the last line),
2 invalid configuration or command line (each problem with its key).""",
    "check": """\
examples:
  swimstream check --config config/towers.yaml
  KAFKA_BOOTSTRAP=kafka:9092 swimstream check -c app.yaml   with the values run will see

exit status: 0 the config is valid (prints "ok"), 2 invalid configuration or command
line (each problem on a line of its own, with its key).""",
    "inspect": """\
examples:
  swimstream inspect --store data                   every store file in store.path
  swimstream inspect --store data --node /device/7  one agent: its lanes, links, timers
  swimstream inspect -s data/towers-host1.sqlite --limit 100

exit status: 0 listed, 1 no such store, or values that fail their checksum or do not
decode (shown in place, and counted), 2 invalid command line.""",
    "demo": """\
examples:
  swimstream demo                          until Ctrl-C; dashboard on 127.0.0.1:9001
  swimstream demo --duration 20            stops by itself after 20 s
  swimstream demo --web 0.0.0.0:8080 --devices 500 --rate 200

exit status: 0 stopped by Ctrl-C or after --duration, 1 a failure (such as a --web
address that cannot be had), 2 invalid command line.""",
}
