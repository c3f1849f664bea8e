"""A real editing trace through the server: the automerge-paper trace (259,778 single-character
edits typing a LaTeX paper) is replayed by a pycrdt client in batches, one transaction and so
one update frame per batch; a stock Node Yjs client in the same note must end with exactly the
trace's final text, and so must a fresh client after a server restart.

Run with -s to see the timings.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import signal
import time

import httpx
import pycrdt
import pytest

from crdt.document import random_client_id
from crdt.protocol import SyncUpdate, decode_state_vector
from tests.data import FIXTURES
from tests.live_server import LiveServer
from tests.node_peer import NodePeer, require_node
from tests.yclient import YClient, eventually

TRACE = FIXTURES / "editing-traces" / "sequential_traces" / "automerge-paper.json.gz"
BATCH = 1000  # patches per transaction, i.e. per update frame
NOTE = "automerge-paper"

Patch = tuple[int, int, str]


def utf8_patches(txns: list[dict]) -> tuple[list[Patch], str]:
    """The trace's patches `[pos, delCount, insText]` with pos and delCount converted from
    Unicode code points (the trace's unit) to UTF-8 bytes (pycrdt Text's unit); also the text
    they produce, replayed in plain Python as a check on the trace itself.

    While everything typed so far is ASCII the two units agree (automerge-paper never leaves
    ASCII); after the first non-ASCII character, positions are measured on the running text.
    """
    text = ""
    ascii_so_far = True
    patches: list[Patch] = []
    for txn in txns:
        for position, deleted, inserted in txn["patches"]:
            if ascii_so_far:
                patches.append((position, deleted, inserted))
            else:
                start = len(text[:position].encode())
                length = len(text[position : position + deleted].encode())
                patches.append((start, length, inserted))
            text = text[:position] + inserted + text[position + deleted :]
            ascii_so_far = ascii_so_far and inserted.isascii()
    return patches, text


def apply_patches(text: pycrdt.Text, patches: list[Patch]) -> None:
    for position, deleted, inserted in patches:
        if deleted:
            del text[position : position + deleted]
        if inserted:
            text.insert(position, inserted)


async def unloaded(server: LiveServer, timeout: float = 30) -> dict:
    """/health once no room is open (every room stored and unloaded)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            health = (await client.get(f"{server.url}/health")).json()
            if health["rooms"] == 0:
                return health
            if time.monotonic() > deadline:
                pytest.fail(f"rooms still open after {timeout}s: {health}")
            await asyncio.sleep(0.05)


def test_positions_are_converted_from_code_points_to_utf8_bytes():
    txns = [
        {"patches": [[0, 0, "aé😀b"], [3, 0, "X"]]},  # after the emoji: code point 3, byte 7
        {"patches": [[1, 2, ""], [2, 1, "ü"], [0, 0, "<"]]},
    ]
    patches, expected = utf8_patches(txns)
    assert expected == "<aXü"
    assert patches[1] == (7, 0, "X")
    assert patches[2] == (1, 6, "")  # "é😀" is 2 + 4 bytes
    doc = pycrdt.Doc()
    text = doc.get("content", type=pycrdt.Text)
    apply_patches(text, patches)
    assert str(text) == expected


@pytest.mark.slow
@pytest.mark.skipif(not TRACE.exists(), reason=f"{TRACE} is not available")
async def test_the_automerge_paper_trace_replayed_through_the_server(tmp_path):
    require_node()
    trace = json.loads(gzip.decompress(TRACE.read_bytes()))
    patches, replayed = utf8_patches(trace["txns"])
    final = trace["endContent"]
    assert len(patches) == 259_778
    assert replayed == final
    batches = [patches[start : start + BATCH] for start in range(0, len(patches), BATCH)]
    inserted = sum(len(patch[2]) for patch in patches)  # the writer's clock at the end

    env = {"COSCRIBE_SQLITE_PATH": str(tmp_path / "trace.sqlite")}
    server = LiveServer(env, tmp_path).start()
    try:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with NodePeer.start("reader") as reader:
            await reader.connect(url, NOTE, 1)
            writer = await YClient(server.url, NOTE, client_id=random_client_id()).connect()
            await asyncio.wait_for(writer.synced.wait(), 10)

            started = time.perf_counter()
            for batch in batches:
                with writer.doc.transaction():  # one transaction: one update frame
                    apply_patches(writer.text, batch)
                await asyncio.sleep(0)  # let the frame go out (and echoes in) as we type
            replay_s = time.perf_counter() - started
            assert str(writer.text) == final

            # The server echoes what it applied to its sender too (the updates of one turn of
            # its event loop merged into one frame): all of it, once every batch is applied.
            echoed, seen = pycrdt.Doc(), 0

            def echoed_all() -> bool:
                nonlocal seen
                for message in writer.received[seen:]:
                    if isinstance(message, SyncUpdate):
                        echoed.apply_update(message.update)
                seen = len(writer.received)
                return decode_state_vector(echoed.get_state()) == {writer.doc.client_id: inserted}

            await eventually(echoed_all, 30, "every batch echoed")
            applied_s = time.perf_counter() - started - replay_s
            await reader.call("waitText", text=final, timeout=30)
            converge_s = time.perf_counter() - started - replay_s
            reader_sv = decode_state_vector(
                base64.b64decode((await reader.call("stateVector"))["sv"])
            )
            assert reader_sv == {writer.doc.client_id: inserted}
            assert decode_state_vector(writer.doc.get_state()) == reader_sv
            await writer.close()
        # Everyone left: the room is flushed, then unloaded.
        health = await unloaded(server)
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode in (0, -signal.SIGTERM)
    assert "every update stored" in server.log()
    # Group commit may store several frames in one flush, but every frame is one update.
    assert health["stored_updates"] == len(batches), health

    with LiveServer(env, tmp_path) as again:
        async with NodePeer.start("fresh") as fresh:
            started = time.perf_counter()
            await fresh.connect(f"ws://127.0.0.1:{again.port}/ws", NOTE, 2, timeout=30)
            load_s = time.perf_counter() - started
            assert await fresh.text() == final
            fresh_sv = (await fresh.call("stateVector"))["sv"]
            assert decode_state_vector(base64.b64decode(fresh_sv)) == reader_sv

    print(
        f"\nautomerge-paper: {len(patches)} patches in {len(batches)} frames of {BATCH}; "
        f"replay {replay_s:.2f}s, server applied all {applied_s:.2f}s after, Node reader "
        f"converged {converge_s:.2f}s after the replay; fresh Node client after restart "
        f"synced in {load_s:.2f}s; {len(final)} chars"
    )
