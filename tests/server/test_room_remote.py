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
        room.remote_awareness(("other", connection), entries)
    assert len(room.awareness) == 17
    room.forget_owners(lambda owner: isinstance(owner, tuple) and owner[0] == "other")
    assert len(room.awareness) == 1
    assert [payload for _, payload in room.local_awareness()] == [
        protocol.awareness_payload([AwarenessEntry(1, 1, {"user": "here"})])
    ]
