"""A room's two kinds of changes in a cluster: its own (published to every sink, the bus
included) and another instance's (sent to its connections only: the instance where it was made
stores it and publishes it), with awareness states owned per remote connection."""

import pycrdt
import pytest

from crdt import protocol
from crdt.document import UpdateRefused
from crdt.protocol import AwarenessEntry
from server.room import BROADCAST, Room
from tests.server.test_rooms import Channel


class Recorder:
    def __init__(self) -> None:
        self.updates: list[bytes] = []
        self.awareness_sent: list[tuple[int, bytes]] = []

    def publish(self, room: Room, update: bytes) -> None:
        self.updates.append(update)

    def awareness(self, room: Room, connection, payload: bytes) -> None:
        self.awareness_sent.append((id(connection), payload))


def _update(text: str) -> bytes:
    doc = pycrdt.Doc()
    doc["content"] = content = pycrdt.Text()
    content += text
    return doc.get_update()


@pytest.fixture
def room_and_bus():
    bus = Recorder()
    room = Room("n1", pycrdt.Doc(), awareness_timeout_s=30, sinks=(BROADCAST, bus), relay=bus)
    return room, bus


async def test_a_remote_update_reaches_connections_but_no_other_sink(room_and_bus):
    room, bus = room_and_bus
    channel = Channel("n1", "reader")
    room.join(channel.connection)
    room.apply_remote(_update("from elsewhere"))
    assert str(room.doc.get("content", type=pycrdt.Text)) == "from elsewhere"
    assert bus.updates == []
    room.apply(_update("mine"))
    assert len(bus.updates) == 1


def test_a_remote_update_is_checked_before_pycrdt_reads_it(room_and_bus):
    room, _ = room_and_bus
    with pytest.raises(UpdateRefused):
        room.apply_remote(b"\x01\x01\xff\xff\xff\xff\x7f\x00")  # a clock past 32 bits


async def test_remote_presence_is_kept_per_connection_and_forgotten_with_its_instance(room_and_bus):
    room, bus = room_and_bus
    local = Channel("n1", "local")
    room.join(local.connection)
    room.receive(
        local.connection,
        protocol.decode(
            protocol.awareness(protocol.awareness_payload([AwarenessEntry(1, 1, {"user": "here"})]))
        ),
    )
    assert [cid for cid, _ in bus.awareness_sent] == [id(local.connection)]
    # Eight ids per owner at most: two connections of one instance hold eight each.
    for connection in (1, 2):
        entries = [AwarenessEntry(100 * connection + i, 1, {"i": i}) for i in range(8)]
        room.remote_awareness("other", connection, entries)
    assert len(room.awareness) == 17
    room.forget_instance("other")
    assert len(room.awareness) == 1
    assert [payload for _, payload in room.local_awareness()] == [
        protocol.awareness_payload([AwarenessEntry(1, 1, {"user": "here"})])
    ]


async def test_a_client_that_moved_here_takes_its_state_over_with_a_newer_clock(room_and_bus):
    room, bus = room_and_bus
    room.remote_awareness("dead", 1, [AwarenessEntry(7, 3, {"cursor": 1})])
    moved = Channel("n1", "moved")
    room.join(moved.connection)

    def announce(clock: int, state: object) -> None:
        payload = protocol.awareness_payload([AwarenessEntry(7, clock, state)])
        room.receive(moved.connection, protocol.decode(protocol.awareness(payload)))

    announce(3, {"cursor": 1})  # the same clock (a reconnect, or an echo): nothing to take
    assert bus.awareness_sent == []
    announce(4, {"cursor": 2})
    assert [cid for cid, _ in bus.awareness_sent] == [id(moved.connection)]
    room.forget_instance("dead")  # its instance is found dead: the moved client stays
    assert [payload for _, payload in room.local_awareness()] == [
        protocol.awareness_payload([AwarenessEntry(7, 4, {"cursor": 2})])
    ]


async def test_a_local_connection_state_is_never_taken_over(room_and_bus):
    room, _ = room_and_bus
    first, second = Channel("n1", "first"), Channel("n1", "second")
    room.join(first.connection)
    room.join(second.connection)
    for channel, clock in ((first, 1), (second, 2)):
        payload = protocol.awareness_payload([AwarenessEntry(7, clock, {"clock": clock})])
        room.receive(channel.connection, protocol.decode(protocol.awareness(payload)))
    assert room.awareness.owned(first.connection) == {7}
    assert not room.awareness.owned(second.connection)
