"""Hostile sockets against a real server: a client that never reads, one that reads a byte a
second, a socket that half-closes, a burst of 10,000 frames. Each is closed or throttled with
bounded memory, and the well-behaved clients of the same room keep receiving every update
with low latency while the attacker is there.

Every test runs a writer and three readers (Python `websockets` clients) in the attacked
room; the writer sends a numbered probe update at a steady pace and each reader records
when it arrives, so the fan-out latency is measured during the attack. The attackers are raw
TCP sockets in threads (a websocket handshake done with websockets' sans-I/O client), so they
can do what no client library does: stop reading, half-close, write 10,000 frames at once.
The server's RSS is sampled all along from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pathlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pycrdt
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from crdt import protocol
from server import closecodes
from tests.live_server import LiveServer
from tests.yclient import YClient, eventually

NOTE = "hostile"
READERS = 3
ATTACKER_ID = 4_242
MiB = 1 << 20
# Generous bounds for a loaded 2-core machine: a healthy run is 10x below them.
P99_BOUND_S = 1.0
MAX_BOUND_S = 3.0


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class RssSampler:
    """Samples a process's RSS every 50 ms in a thread (the event loop may be busy)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


class RawSocket:
    """A websocket client on a plain blocking socket: websockets' sans-I/O protocol does the
    handshake, masks what we send and parses what we read, and we decide when to read."""

    def __init__(self, port: int, note_id: str, *, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:  # before connect(), so the window offered is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws/{note_id}"), max_size=None)
        self.proto.send_request(self.proto.connect())
        self.sock.sendall(b"".join(self.proto.data_to_send()))
        self.received = 0  # bytes read after the handshake
        self.close_code: int | None = None
        self.eof = False
        self.sock.settimeout(10)
        while not isinstance(event := self._next_event(), Response):
            pass
        assert event.status_code == 101, event

    def _next_event(self):
        while True:
            for event in self.proto.events_received():
                return event
            data = self.sock.recv(4096)
            if not data:
                raise AssertionError("the server closed during the handshake")
            self.proto.receive_data(data)

    def frame(self, payload: bytes, opcode: Opcode = Opcode.BINARY) -> bytes:
        """The wire bytes of one masked client frame."""
        return WireFrame(opcode, payload).serialize(mask=True)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, nbytes: int) -> bytes:
        """Read up to nbytes; b"" once the server closed or dropped the socket."""
        try:
            data = self.sock.recv(nbytes)
        except OSError:  # reset, timed out, or shut down by close() from another thread
            data = b""
        if not data:
            self.eof = True
            return b""
        self.received += len(data)
        self.proto.receive_data(data)
        for _ in self.proto.events_received():
            pass
        if self.proto.close_rcvd is not None:
            self.close_code = self.proto.close_rcvd.code
        # Answers the protocol owes (pongs, the close reply) go out, as a client's would.
        with contextlib.suppress(OSError):
            self.sock.sendall(b"".join(self.proto.data_to_send()))
        return data

    def read_to_end(self, timeout: float) -> int | None:
        """Read everything until the server closes; the close code it sent, if any."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() > deadline:
                raise AssertionError("the server did not close the socket")
            self.read(1 << 16)
        return self.close_code

    def close(self) -> None:
        # shutdown() first: it wakes a recv() blocked in another thread, close() alone may not.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Room:
    """A writer and READERS readers in one note. The writer sends numbered probe updates; each
    reader notes when each one arrives."""

    def __init__(self, server: LiveServer, note_id: str = NOTE) -> None:
        self.server = server
        self.note_id = note_id
        self.writer = YClient(server.url, note_id)
        self.readers = [YClient(server.url, note_id) for _ in range(READERS)]
        self.sent: dict[int, float] = {}
        self.arrived: list[dict[int, float]] = [{} for _ in self.readers]
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10)

    async def __aenter__(self) -> Room:
        for client in (self.writer, *self.readers):
            await client.connect()
        await asyncio.wait_for(
            asyncio.gather(*(c.synced.wait() for c in (self.writer, *self.readers))), 10
        )
        # Kept: a subscription that is garbage-collected stops calling back.
        self._subscriptions = [
            reader.doc.get("probe", type=pycrdt.Map).observe(self._on_probe(arrived))
            for reader, arrived in zip(self.readers, self.arrived, strict=True)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in (self.writer, *self.readers):
            await client.close()
        await self.http.aclose()

    @staticmethod
    def _on_probe(arrived: dict[int, float]) -> Callable[[pycrdt.MapEvent], None]:
        def record(event: pycrdt.MapEvent) -> None:
            # Probes overwrite one key: probes that reach the server in one turn of its event
            # loop go out merged, and the reader sees the last one. Having probe n means having
            # every probe before it (the writer's updates are applied in order).
            now = time.monotonic()
            for change in event.keys.values():
                newest = int(change["newValue"].split(" ", 1)[0])
                for n in range(newest, -1, -1):
                    if n in arrived:
                        break
                    arrived[n] = now

        return record

    def write(self, pad: int = 0) -> None:
        """Send the next probe update, padded with `pad` bytes (to make the fan-out heavy)."""
        n = len(self.sent)
        self.sent[n] = time.monotonic()
        self.writer.doc.get("probe", type=pycrdt.Map)["n"] = f"{n} {'x' * pad}"

    async def write_while(self, busy: Callable[[], bool], *, every_s: float, pad: int = 0):
        """Probe every `every_s` while busy() holds (at least 20 probes)."""
        while busy() or len(self.sent) < 20:
            self.write(pad)
            await asyncio.sleep(every_s)

    async def all_arrived(self, timeout: float = 30) -> None:
        expected = set(self.sent)
        await eventually(
            lambda: all(expected <= set(arrived) for arrived in self.arrived),
            timeout=timeout,
            what=lambda: f"missing probes: {[len(expected - set(a)) for a in self.arrived]}",
        )

    def latencies(self) -> list[float]:
        return sorted(
            arrived[n] - sent for arrived in self.arrived for n, sent in self.sent.items()
        )

    def check_latency(self, p99_bound: float = P99_BOUND_S) -> str:
        """Every probe reached every reader, p99 and max under generous bounds."""
        lat = self.latencies()
        assert len(lat) == READERS * len(self.sent)
        p50, p99, worst = lat[len(lat) // 2], lat[int(len(lat) * 0.99)], lat[-1]
        summary = (
            f"{len(self.sent)} probes x {READERS} readers: p50 {p50 * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms"
        )
        assert p99 < p99_bound and worst < max(p99_bound, MAX_BOUND_S), summary
        return summary

    async def connections(self) -> int:
        return (await self.http.get("/health")).json()["connections"]

    async def wait_connections(self, count: int, timeout: float) -> float:
        """Wait until the server counts `count` sockets; how long it took."""
        start = time.monotonic()
        deadline = start + timeout
        while (now := await self.connections()) != count:
            assert time.monotonic() < deadline, f"{now} sockets, waiting for {count}"
            await asyncio.sleep(0.05)
        return time.monotonic() - start

    async def text(self) -> str:
        response = await self.http.get(
            f"/api/notes/{self.note_id}/content", headers={"Accept": "text/plain"}
        )
        response.raise_for_status()
        return response.text


def in_thread(target: Callable[[], object]) -> asyncio.Future:
    return asyncio.get_running_loop().run_in_executor(None, target)


@pytest.fixture
def live(tmp_path) -> Iterator[Callable[..., LiveServer]]:
    """Starts a server on SQLite with extra settings; stops every one it started."""
    started: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        settings = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite"), **env}
        server = LiveServer(settings, tmp_path).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def report(what: str, **figures: object) -> None:
    print(f"\n{what}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# --- 1 and 4: a client that reads a byte a second, or never -----------------------------

SEND_QUEUE_BYTES = 2 * MiB


@pytest.mark.parametrize("read_every_s", [None, 1.0], ids=["never-reads", "reads-1-byte-per-s"])
async def test_a_slow_reader_is_dropped_and_the_room_keeps_up(live, read_every_s):
    server = live(COSCRIBE_SEND_QUEUE_BYTES=str(SEND_QUEUE_BYTES))
    assert server.process is not None
    async with Room(server) as room:
        sockets = server_sockets(server)
        attacker = RawSocket(server.port, NOTE, rcvbuf=4096)
        await room.wait_connections(READERS + 2, 10)
        stop = threading.Event()

        def trickle() -> None:
            while read_every_s is not None and not stop.wait(read_every_s):
                if not attacker.read(1):
                    return

        reading = in_thread(trickle)
        try:
            with RssSampler(server.process.pid) as memory:
                start = time.monotonic()
                left: list[float] = []

                async def watch() -> None:
                    left.append(await room.wait_connections(READERS + 1, 60))

                watching = asyncio.create_task(watch())
                # 20 kB updates, 50 a second: 1 MB/s to each of the five sockets.
                await room.write_while(lambda: not watching.done(), every_s=0.02, pad=20_000)
                await watching
                await room.all_arrived()
                # The room forgot it at once; its socket (and buffer) goes within 5 s after.
                await eventually(
                    lambda: server_sockets(server) <= sockets, timeout=15, what="socket freed"
                )
                freed = time.monotonic() - start
        finally:
            # A failure above must not leave the trickling thread blocked on the socket: the
            # loop's executor would wait for it at teardown, for ever.
            stop.set()
            attacker.close()
        await reading
        summary = room.check_latency()
    assert "not reading" in server.log()
    # What the attacker holds is SEND_QUEUE_BYTES plus a frame; the rest is the writer's
    # 1 MB/s going through the room, the log and the database.
    assert memory.growth < 64 * MiB, memory.growth
    report(
        f"slow reader ({read_every_s})",
        left_room_s=f"{left[0]:.1f}",
        socket_freed_s=f"{freed:.1f}",
        attacker_read=attacker.received,
        rss_growth_mib=f"{memory.growth / MiB:.1f}",
        latency=summary,
    )


def server_sockets(server: LiveServer) -> int:
    """The server's open sockets. Not all its descriptors: a worker thread that opens its
    first SQLite connection meanwhile adds files that have nothing to do with a client."""
    assert server.process is not None
    fds = pathlib.Path(f"/proc/{server.process.pid}/fd").iterdir()
    return sum(1 for fd in fds if _readlink(fd).startswith("socket:"))


def _readlink(fd: pathlib.Path) -> str:
    try:
        return os.readlink(fd)
    except FileNotFoundError:  # closed meanwhile
        return ""


# --- 2: a socket that half-closes -------------------------------------------------------


def attacker_updates(count: int, word: Callable[[int], str]) -> tuple[list[bytes], list[str]]:
    """`count` y-websocket update messages from one client, each appending word(i) to the
    note's text; and the words."""
    doc = pycrdt.Doc(client_id=ATTACKER_ID)
    text = doc.get("content", type=pycrdt.Text)
    messages: list[bytes] = []
    subscription = doc.observe(lambda event: messages.append(protocol.sync_update(event.update)))
    words = [word(i) for i in range(count)]
    for w in words:
        text += w
    doc.unobserve(subscription)
    return messages, words


def note_content(server: LiveServer) -> str:
    """The note's text as its live room has it now ("" before it exists)."""
    response = httpx.get(f"{server.url}/api/notes/{NOTE}/content", headers={"Accept": "text/plain"})
    return response.text if response.status_code == 200 else ""


async def stored_text(live: Callable[..., LiveServer], server: LiveServer) -> str:
    """The note's text as stored: the server stopped (flushing), a new one reads it."""
    server.stop()
    again = live()
    async with httpx.AsyncClient(base_url=again.url) as http:
        response = await http.get(f"/api/notes/{NOTE}/content", headers={"Accept": "text/plain"})
    response.raise_for_status()
    return response.text


@pytest.mark.parametrize(
    ("updates", "partial"),
    # 500 updates in one write are more than one 4 KiB parse slice: the rest is still held
    # as bytes when the FIN arrives, and must reach the app all the same.
    [(0, False), (3, False), (3, True), (500, False)],
    ids=["after-handshake", "after-3-updates", "in-the-middle-of-a-frame", "after-500-updates"],
)
async def test_a_half_closed_socket_is_closed_and_what_it_sent_is_kept(live, updates, partial):
    server = live()
    messages, words = attacker_updates(updates, lambda i: f"<half-closed {i}>")
    async with Room(server) as room:
        attacker = RawSocket(server.port, NOTE)
        await room.wait_connections(READERS + 2, 10)
        attacker.send_raw(b"".join(attacker.frame(m) for m in messages))
        if partial:  # the first 4 kB of a 100 kB frame
            attacker.send_raw(attacker.frame(protocol.sync_update(b"x" * 100_000))[:4096])
        attacker.sock.shutdown(socket.SHUT_WR)
        start = time.monotonic()
        probing = asyncio.create_task(room.write_while(lambda: False, every_s=0.02))
        left = await room.wait_connections(READERS + 1, 10)
        # The server closed its side too: the attacker reads to the end of the stream.
        code = await in_thread(lambda: attacker.read_to_end(10))
        closed = time.monotonic() - start
        await probing
        await room.all_arrived()
        summary = room.check_latency()
        expected = "".join(words)
        await eventually(lambda: all(str(r.text) == expected for r in room.readers))
        attacker.close()
    assert await stored_text(live, server) == expected
    report(
        f"half-close after {updates} updates{' and part of a frame' if partial else ''}",
        left_room_s=f"{left:.2f}",
        closed_s=f"{closed:.2f}",
        close_code=code,
        latency=summary,
    )


async def test_frames_sent_before_the_socket_joined_its_room_come_first_in_order(live):
    """The server reads frames before the socket is admitted to its room (the token and the
    note are looked up first): those wait, and go to the room before any frame read after
    it joined. 300 updates (several parse slices and turns) right after the handshake."""
    server = live()
    messages, words = attacker_updates(300, lambda i: f"<early {i}>")
    attacker = RawSocket(server.port, NOTE)
    attacker.send_raw(b"".join(attacker.frame(m) for m in messages))
    expected = "".join(words)

    deadline = time.monotonic() + 20
    while (text := note_content(server)) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    # Out of order, an update would follow one the room does not have yet: refused (1007).
    assert text == expected, (len(text), len(expected))
    assert attacker.close_code is None
    attacker.close()
    assert await stored_text(live, server) == expected


async def test_an_update_after_a_text_frame_is_not_applied(live):
    """A text frame closes the socket (1003): an update right behind it, in the same read,
    must wait behind it rather than reach the room first."""
    server = live()
    messages, words = attacker_updates(2, lambda i: f"<after text {i}>")
    attacker = RawSocket(server.port, NOTE)
    attacker.send_raw(attacker.frame(messages[0]))
    await eventually(lambda: note_content(server) == words[0])  # the socket is in its room
    attacker.send_raw(attacker.frame(b"hello", Opcode.TEXT) + attacker.frame(messages[1]))
    code = await in_thread(lambda: attacker.read_to_end(10))
    attacker.close()
    assert code == closecodes.UNSUPPORTED_DATA
    assert await stored_text(live, server) == words[0]


# --- 3: a burst of 10,000 frames from one client -----------------------------------------

BURST = 10_000


def awareness_burst(count: int) -> list[bytes]:
    entry = protocol.AwarenessEntry
    return [
        protocol.awareness(protocol.awareness_payload([entry(ATTACKER_ID, i + 1, {"n": i})]))
        for i in range(count)
    ]


def attacker_awareness(reader: YClient) -> int:
    """Awareness entries of the attacker's that a reader received."""
    return sum(
        1
        for message in reader.received
        if isinstance(message, protocol.AwarenessUpdate)
        for entry in message.entries
        if entry.client_id == ATTACKER_ID and entry.state is not None
    )


# (id, the frames, their opcode, extra settings, the close code expected or None)
BURSTS = [
    ("updates", "updates", Opcode.BINARY, {}, closecodes.POLICY),
    ("updates-all-allowed", "updates", Opcode.BINARY, {"COSCRIBE_UPDATE_BURST": "20000"}, None),
    ("awareness", "awareness", Opcode.BINARY, {}, closecodes.POLICY),
    ("sync-step-1", "step1", Opcode.BINARY, {}, closecodes.POLICY),
    ("unknown-types", "unknown", Opcode.BINARY, {}, closecodes.POLICY),
    ("garbage-binary", "garbage", Opcode.BINARY, {}, closecodes.INVALID_PAYLOAD),
    ("garbage-text", "garbage", Opcode.TEXT, {}, closecodes.UNSUPPORTED_DATA),
]


@pytest.mark.parametrize(
    ("kind", "opcode", "env", "expected_code"),
    [case[1:] for case in BURSTS],
    ids=[case[0] for case in BURSTS],
)
async def test_a_burst_of_10000_frames_is_throttled_and_the_room_keeps_up(
    live, kind, opcode, env, expected_code
):
    server = live(**env)
    assert server.process is not None
    words: list[str] = []
    if kind == "updates":
        messages, words = attacker_updates(BURST, lambda i: f"{i},")
    elif kind == "awareness":
        messages = awareness_burst(BURST)
    elif kind == "step1":
        messages = [protocol.sync_step1(b"\x00")] * BURST
    elif kind == "unknown":
        messages = [b"\x63\x00"] * BURST  # type 99: ignored
    else:
        # A truncated varUint; as text, valid UTF-8 (else the websocket layer refuses it).
        messages = [b"\xff\xff\xff\xff\xff" if opcode == Opcode.BINARY else b"junk"] * BURST
    async with Room(server) as room:
        attacker = RawSocket(server.port, NOTE)
        await room.wait_connections(READERS + 2, 10)
        burst = b"".join(attacker.frame(m, opcode) for m in messages)

        def attack() -> int | None:
            with contextlib.suppress(OSError):  # the server may close before it read all
                attacker.send_raw(burst)
            sent.append(time.monotonic())
            if expected_code is None:
                return None
            return attacker.read_to_end(30)

        sent: list[float] = []
        with RssSampler(server.process.pid) as memory:
            start = time.monotonic()
            attacking = in_thread(attack)
            await room.write_while(lambda: not attacking.done(), every_s=0.02)
            code = await attacking
            took = time.monotonic() - start
            await room.all_arrived()
        # With the burst limit lifted, the readers (this process) apply 10,000 updates that
        # came before some probes, in order: their latency is the clients', not the server's.
        summary = room.check_latency(10.0 if "COSCRIBE_UPDATE_BURST" in env else P99_BOUND_S)
        assert code == expected_code
        if expected_code is None:  # still connected, and served: it gets our step 1 reply
            assert await room.connections() == READERS + 2
        else:
            await room.wait_connections(READERS + 1, 10)
        if kind == "updates" and expected_code is None:
            everything = "".join(words)
            await eventually(
                lambda: all(str(r.text) == everything for r in room.readers), timeout=60
            )
        text = str(room.readers[0].text)
        assert all(str(reader.text) == text for reader in room.readers)
        seen = [attacker_awareness(reader) for reader in room.readers]
        attacker.close()
    # What was accepted is a prefix of what was sent (frames are handled in order), and it
    # is stored; without the burst limit, all of it.
    accepted = len(text.split(",")) - 1 if text else 0
    assert text == "".join(words[:accepted])
    assert await stored_text(live, server) == text
    if kind == "updates":
        assert accepted == BURST if expected_code is None else 1000 <= accepted < BURST
    if kind == "awareness":
        assert all(1000 <= n < BURST for n in seen), seen
    assert memory.growth < 64 * MiB, memory.growth
    report(
        f"burst of {BURST} {kind} ({opcode.name})",
        burst_bytes=len(burst),
        close_code=code,
        done_s=f"{took:.2f}",
        updates_accepted=accepted,
        awareness_passed_on=seen[0],
        rss_growth_mib=f"{memory.growth / MiB:.1f}",
        latency=summary,
    )


async def test_a_ping_flood_from_a_client_that_never_reads_is_throttled(live):
    """Pings are answered by the websocket layer, below the app and its bounds: 50 MB of
    pings from a client that never reads made 50 MB of pongs wait in its write buffer, and
    parsing them held the event loop (p50 fan-out latency 1.2 s). Now the server stops
    reading from it until it reads, or closes it once past its budget of pings."""
    server = live()
    assert server.process is not None
    async with Room(server) as room:
        attacker = RawSocket(server.port, NOTE, rcvbuf=4096)
        await room.wait_connections(READERS + 2, 10)
        pings = attacker.frame(b"p" * 125, Opcode.PING) * 10_000
        sent: list[int] = []

        def attack() -> None:
            attacker.sock.settimeout(3)
            try:
                for _ in range(40):
                    attacker.send_raw(pings)
                    sent.append(len(pings))
            except TimeoutError:
                pass  # the server does not read any more: its buffers and ours are full
            except ConnectionError:
                pass  # or it read past the ping budget and closed the socket (1008)

        with RssSampler(server.process.pid) as memory:
            attacking = in_thread(attack)
            await room.write_while(lambda: not attacking.done(), every_s=0.02)
            await attacking
            await room.all_arrived()
        summary = room.check_latency()
        attacker.close()
    assert sum(sent) < 40 * len(pings), "the server read all of it"
    assert memory.growth < 16 * MiB, memory.growth
    report(
        "ping flood",
        pings_sent_mib=f"{sum(sent) / MiB:.1f} of {40 * len(pings) / MiB:.0f}",
        rss_growth_mib=f"{memory.growth / MiB:.1f}",
        latency=summary,
    )


async def test_a_flood_of_tiny_frames_is_parsed_a_slice_at_a_time(live):
    """websockets parses a whole socket read (up to 256 KiB) into messages at once: 5 sockets
    sending 1.4 MB each of 7-byte frames, with the burst limit lifted so nothing closes them,
    made 49 MiB of waiting messages. The server parses 4 KiB of a read at a time now, and the
    rest waits as bytes until the app took what came before."""
    server = live(COSCRIBE_UPDATE_BURST="10000000", COSCRIBE_MAX_UPDATES_PER_S="10000000")
    assert server.process is not None
    async with Room(server) as room:
        attackers = [RawSocket(server.port, NOTE) for _ in range(5)]
        await room.wait_connections(READERS + 1 + len(attackers), 10)
        # A message type nobody knows: decoded and ignored, one per frame.
        flood = attackers[0].frame(b"\x07") * 200_000

        def attack(attacker: RawSocket) -> None:
            attacker.send_raw(flood)

        with RssSampler(server.process.pid) as memory:
            attacking = [in_thread(functools.partial(attack, a)) for a in attackers]
            await room.write_while(lambda: not all(a.done() for a in attacking), every_s=0.02)
            await asyncio.gather(*attacking)
            await room.all_arrived()
        summary = room.check_latency()
        for attacker in attackers:
            attacker.close()
    assert memory.growth < 8 * MiB, memory.growth  # 20-49 MiB before
    report(
        "tiny-frame flood",
        sent_mb=f"{5 * len(flood) / 1e6:.1f}",
        rss_growth_mib=f"{memory.growth / MiB:.1f}",
        latency=summary,
    )


async def test_a_ping_flood_from_a_client_that_reads_is_closed(live):
    """A client that reads its pongs is never paused: its pings get a budget of their own,
    and past it the socket is closed with 1008 while the room keeps up."""
    server = live()
    assert server.process is not None
    async with Room(server) as room:
        attacker = RawSocket(server.port, NOTE)
        await room.wait_connections(READERS + 2, 10)
        pings = attacker.frame(b"p", Opcode.PING) * 5_000

        def attack() -> int | None:
            with contextlib.suppress(OSError):
                attacker.send_raw(pings)
            return attacker.read_to_end(20)  # reads every pong, then the close

        start = time.monotonic()
        attacking = in_thread(attack)
        await room.write_while(lambda: not attacking.done(), every_s=0.02)
        code = await attacking
        took = time.monotonic() - start
        await room.all_arrived()
        summary = room.check_latency()
        attacker.close()
    assert code == 1008
    report("ping flood, reading", close_code=code, closed_s=f"{took:.2f}", latency=summary)
