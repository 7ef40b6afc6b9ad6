"""As much of Pulsar's binary protocol as the probes speak, without pulsar-client.

The probes (:mod:`connectors.listener_probe`, :mod:`connectors.pulsar.first_contact`)
and the tests' secured gateway need a ``CONNECT`` frame and the fields of an answer, not
a protobuf runtime: a frame is two big-endian sizes and a ``BaseCommand`` message, and a
message is varint-tagged fields. Kept outside :mod:`connectors.pulsar`, whose package
imports the client: a Kafka address's probe must not load it.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

CONNECT = 2
"""``BaseCommand.Type.CONNECT`` (the command's own field has the same number)."""
ERROR = 14
"""``BaseCommand.Type.ERROR``."""
PROTOCOL_VERSION = 6
"""A protocol version every broker accepts: it answers ``CONNECTED`` with its own."""
_LEN = 2  # protobuf wire type of strings, bytes and messages


def varint(value: int) -> bytes:
    """``value`` as a protobuf varint (an unsigned one: -1 is ``2**64 - 1``)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``at`` and where the next field starts (IndexError when cut short)."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def bytes_field(number: int, value: bytes) -> bytes:
    """A length-delimited field: a string, bytes or an embedded message."""
    return varint(number << 3 | _LEN) + varint(len(value)) + value


def fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of ``message``: an int for a varint, bytes
    otherwise. A message cut short, or a wire type no Pulsar command uses, ends it: the
    bytes come from whatever answered, which may not speak Pulsar at all."""
    at = 0
    try:
        while at < len(message):
            tag, at = read_varint(message, at)
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                value, at = read_varint(message, at)
                yield number, value
                continue
            if wire == _LEN:
                size, at = read_varint(message, at)
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
            else:
                return
            yield number, message[at : at + size]
            at += size
    except IndexError:
        return


def frame(command: bytes, payload: bytes = b"") -> bytes:
    """A frame of ``command`` (a ``BaseCommand``): total size, command size, command."""
    return struct.pack(">II", 4 + len(command) + len(payload), len(command)) + command + payload


def read_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock``, blocking; ConnectionError if it closes first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def connect_frame(client_version: bytes, credentials: tuple[str, bytes] | None = None) -> bytes:
    """``BaseCommand{type: CONNECT, connect: {client_version, protocol_version, and the
    auth_method_name and auth_data of credentials ``(method, data)`` if any}}``."""
    connect = bytes_field(1, client_version) + b"\x20" + varint(PROTOCOL_VERSION)
    if credentials is not None:
        method, data = credentials
        connect += bytes_field(3, data) + bytes_field(5, method.encode())
    return frame(b"\x08" + varint(CONNECT) + bytes_field(CONNECT, connect))
