"""The few protobuf pieces the Pulsar probes speak round-trip, and an answer from
something that is not Pulsar ends the fields rather than raising."""

from hypothesis import given
from hypothesis import strategies as st

from connectors.pulsar_wire import (
    CONNECT,
    bytes_field,
    connect_frame,
    fields,
    read_varint,
    varint,
)


@given(st.integers(min_value=0, max_value=2**64 - 1), st.binary(max_size=8))
def test_a_varint_reads_back_and_says_where_the_next_field_starts(value: int, rest: bytes) -> None:
    encoded = varint(value)
    assert read_varint(encoded + rest, 0) == (value, len(encoded))


@given(st.lists(st.tuples(st.integers(1, 2**29 - 1), st.binary(max_size=300)), max_size=5))
def test_length_delimited_fields_read_back_in_order(written: list[tuple[int, bytes]]) -> None:
    message = b"".join(bytes_field(number, value) for number, value in written)
    assert list(fields(message)) == written


@given(st.binary(max_size=64))
def test_any_bytes_give_fields_or_end_them_without_raising(junk: bytes) -> None:
    for number, value in fields(junk):
        assert number >= 0 and isinstance(value, int | bytes)


def test_a_connect_frame_carries_its_credentials() -> None:
    frame = connect_frame(b"probe", ("token", b"secret"))
    total, size = int.from_bytes(frame[:4], "big"), int.from_bytes(frame[4:8], "big")
    assert total == len(frame) - 4 and size == len(frame) - 8
    command = dict(fields(frame[8:]))
    assert command[1] == CONNECT
    connect = command[CONNECT]
    assert isinstance(connect, bytes)
    assert dict(fields(connect)) == {1: b"probe", 4: 6, 3: b"secret", 5: b"token"}
