import json

from crdt import protocol
from crdt.awareness import (
    FOREIGN,
    ROOM_FULL,
    TOO_BIG,
    TOO_MANY_IDS,
    AwarenessLimits,
    AwarenessStates,
)
from crdt.lib0 import MAX_VAR_UINT
from crdt.protocol import AwarenessEntry as Entry


def changed(states: AwarenessStates, entries, now: float, owner=None, **kwargs):
    return states.apply(entries, now, owner, **kwargs).changed


def test_newer_clock_wins_and_older_is_ignored():
    states = AwarenessStates()
    assert changed(states, [Entry(1, 2, {"name": "a"})], now=0) == [Entry(1, 2, {"name": "a"})]
    assert changed(states, [Entry(1, 1, {"name": "old"})], now=1) == []
    assert changed(states, [Entry(1, 2, {"name": "same clock"})], now=1) == []
    assert states.entries() == [Entry(1, 2, {"name": "a"})]
    assert changed(states, [Entry(1, 3, {"name": "b"})], now=2) == [Entry(1, 3, {"name": "b"})]


def test_removal_with_equal_or_newer_clock():
    states = AwarenessStates()
    states.apply([Entry(1, 2, {"x": 1}), Entry(2, 5, {"y": 1})], now=0)
    assert changed(states, [Entry(1, 2, None)], now=1) == [Entry(1, 2, None)]
    assert changed(states, [Entry(2, 6, None)], now=1) == [Entry(2, 6, None)]
    assert len(states) == 0
    # Removing a client never seen changes nothing (and is not re-broadcast).
    assert changed(states, [Entry(3, 1, None)], now=1) == []


def test_remove_returns_entries_with_the_next_clock():
    states = AwarenessStates()
    states.apply([Entry(7, 4, {"u": 1}), Entry(8, 1, {"u": 2})], now=0)
    assert states.remove([7, 99], now=1) == [Entry(7, 5, None)]
    assert 7 not in states and 8 in states


def test_a_removal_past_the_largest_clock_keeps_the_clock():
    # lib0 varUints carry 53 bits: an equal clock with a null state removes the state too.
    states = AwarenessStates()
    states.apply([Entry(7, MAX_VAR_UINT, {"u": 1})], now=0)
    assert states.remove([7], now=1) == [Entry(7, MAX_VAR_UINT, None)]


def test_states_time_out_unless_renewed():
    states = AwarenessStates(timeout_s=30)
    states.apply([Entry(1, 1, {"a": 1}), Entry(2, 1, {"b": 1})], now=0)
    states.apply([Entry(2, 2, {"b": 2})], now=20)
    assert states.expire(now=29.9) == []
    assert states.expire(now=30) == [Entry(1, 2, None)]
    assert states.expire(now=49.9) == []
    assert states.expire(now=50) == [Entry(2, 3, None)]
    assert len(states) == 0
    assert states.owned(None) == frozenset()


def test_a_stale_echo_cannot_bring_a_removed_client_back():
    states = AwarenessStates(timeout_s=30)
    states.apply([Entry(1, 4, {"name": "a"})], now=0)
    assert states.remove([1], now=1) == [Entry(1, 5, None)]
    assert changed(states, [Entry(1, 4, {"name": "a"})], now=2) == [], "an echo of the old state"
    assert 1 not in states
    # The client's own renewal (its clock + 1) is welcome back.
    assert changed(states, [Entry(1, 5, {"name": "a"})], now=3) == [Entry(1, 5, {"name": "a"})]


def test_removal_records_are_forgotten_after_the_timeout():
    states = AwarenessStates(timeout_s=30)
    states.apply([Entry(1, 4, {"x": 1})], now=0)
    states.apply([Entry(1, 4, None)], now=1)
    states.expire(now=40)
    assert changed(states, [Entry(1, 1, {"x": 2})], now=41) == [Entry(1, 1, {"x": 2})]


def test_removal_records_are_bounded():
    states = AwarenessStates(limits=AwarenessLimits(max_states=5, max_ids_per_owner=5))
    for client_id in range(100):
        states.apply([Entry(client_id, 1, {}), Entry(client_id, 2, None)], now=0)
    assert len(states._removed) == 10
    assert list(states._removed) == list(range(90, 100)), "the oldest records went first"


# --- ownership -----------------------------------------------------------------------------


def test_states_of_a_multi_entry_message_belong_to_its_sender_and_go_with_it():
    states = AwarenessStates()
    states.apply([Entry(1, 1, {"me": 1})], now=0, owner="ann")
    states.apply([Entry(2, 1, {"a": 1}), Entry(3, 1, {"b": 1})], now=0, owner="bob")
    assert states.owned("bob") == {2, 3} and states.owned("ann") == {1}
    assert states.remove_owner("bob", now=1) == [Entry(2, 2, None), Entry(3, 2, None)]
    assert [entry.client_id for entry in states.entries()] == [1]
    assert states.remove_owner("bob", now=2) == []


def test_another_owners_state_cannot_be_changed_or_removed():
    states = AwarenessStates()
    states.apply([Entry(1, 1, {"name": "ann"})], now=0, owner="ann")
    hijack = states.apply([Entry(1, 9, {"name": "evil"}), Entry(5, 1, {})], now=1, owner="eve")
    assert hijack.changed == [Entry(5, 1, {})]
    assert hijack.dropped == {FOREIGN: 1}
    # A removal of someone else's id is ignored without complaint: stock clients echo the
    # removals their own timers make.
    removal = states.apply([Entry(1, 2, None)], now=1, owner="eve")
    assert removal.changed == [] and not removal.dropped
    assert states.entries()[0] == Entry(1, 1, {"name": "ann"})
    assert states.owned("ann") == {1} and states.owned("eve") == {5}


def test_an_echo_changes_nothing_and_claims_nothing():
    # Stock y-websocket clients echo every change they receive, others' states included.
    states = AwarenessStates()
    states.apply([Entry(1, 3, {"name": "ann"})], now=0, owner="ann")
    echo = states.apply([Entry(1, 3, {"name": "ann"})], now=1, owner="bob")
    assert echo.changed == [] and not echo.dropped
    assert states.owned("bob") == frozenset()
    assert states.remove_owner("bob", now=2) == []
    assert 1 in states


def test_no_connection_takes_an_id_over_not_even_speaking_for_itself():
    # A reconnected y-websocket client keeps its id while its old socket may linger.
    states = AwarenessStates()
    states.apply([Entry(1, 3, {"v": 1})], now=0, owner="old socket")
    assert states.apply([Entry(1, 4, {"v": 2})], 1, "new socket").dropped == {FOREIGN: 1}
    assert states.entries() == [Entry(1, 3, {"v": 1})]
    # When the old socket goes, the removal is broadcast and the client (which never lets a
    # peer remove its own state) announces itself again, now from its new socket.
    assert states.remove_owner("old socket", now=2) == [Entry(1, 4, None)]
    assert changed(states, [Entry(1, 5, {"v": 2})], 3, "new socket") == [Entry(1, 5, {"v": 2})]
    assert states.owned("new socket") == {1}


# --- limits --------------------------------------------------------------------------------


def test_one_owner_holds_a_bounded_number_of_ids():
    states = AwarenessStates(limits=AwarenessLimits(max_ids_per_owner=3))
    flood = states.apply([Entry(cid, 1, {"n": cid}) for cid in range(10)], now=0, owner="eve")
    assert [entry.client_id for entry in flood.changed] == [0, 1, 2]
    assert flood.dropped == {TOO_MANY_IDS: 7}
    # Its own ids it may still change; a removal frees a place.
    assert changed(states, [Entry(0, 2, {"n": "again"})], 1, "eve") == [Entry(0, 2, {"n": "again"})]
    assert states.apply([Entry(3, 1, {})], 1, "eve").dropped == {TOO_MANY_IDS: 1}
    states.apply([Entry(0, 3, None)], 1, "eve")
    assert changed(states, [Entry(3, 1, {})], 1, "eve") == [Entry(3, 1, {})]
    assert states.owned("eve") == {1, 2, 3}
    # Others are not affected.
    assert changed(states, [Entry(50, 1, {})], 1, "ann") == [Entry(50, 1, {})]


def test_a_state_too_big_is_dropped():
    states = AwarenessStates(limits=AwarenessLimits(max_state_bytes=100))
    exactly = {"s": "x" * (100 - len('{"s":""}'))}
    assert len(json.dumps(exactly, separators=(",", ":"))) == 100
    big = states.apply([Entry(1, 1, exactly), Entry(2, 1, {"s": "x" * 100})], 0, "ann")
    assert big.changed == [Entry(1, 1, exactly)]
    assert big.dropped == {TOO_BIG: 1}
    # A too-big change of a state already held keeps the old one.
    assert states.apply([Entry(1, 2, {"s": "y" * 200})], 1, "ann").dropped == {TOO_BIG: 1}
    assert states.entries() == [Entry(1, 1, exactly)]
    assert states.size == 100


def test_the_room_holds_a_bounded_number_of_states_and_bytes():
    limits = AwarenessLimits(max_ids_per_owner=5, max_states=4, max_bytes=60)
    states = AwarenessStates(limits=limits)
    states.apply([Entry(cid, 1, {"n": cid}) for cid in range(3)], 0, "a")  # 7 bytes each
    full = states.apply([Entry(cid, 1, {"n": cid}) for cid in range(10, 13)], 0, "b")
    assert [entry.client_id for entry in full.changed] == [10]
    assert full.dropped == {ROOM_FULL: 2}
    assert len(states) == 4 and states.size == 3 * 7 + 8
    # Bytes: a state growing past the room's total is dropped, the old one kept.
    assert states.apply([Entry(10, 2, {"n": "x" * 40})], 1, "b").dropped == {ROOM_FULL: 1}
    assert states.apply([Entry(10, 2, {"n": "x" * 30})], 1, "b").changed
    assert states.size == 3 * 7 + len('{"n":""}') + 30
    # A removal makes room again.
    states.apply([Entry(0, 2, None)], 2, "a")
    assert changed(states, [Entry(11, 1, {"n": 11})], 2, "b") == [Entry(11, 1, {"n": 11})]


def test_a_message_with_more_entries_than_a_room_holds_is_refused_whole():
    states = AwarenessStates(limits=AwarenessLimits(max_states=10))
    applied = states.apply([Entry(cid, 1, {}) for cid in range(11)], 0, "eve")
    assert applied.refused and "11 awareness entries" in applied.refused
    assert applied.changed == [] and len(states) == 0


def test_one_message_changing_an_id_many_times_broadcasts_its_last_state_only():
    states = AwarenessStates()
    entries = [Entry(1, clock, {"c": clock}) for clock in range(1, 200)]
    assert changed(states, entries, 0, "ann") == [Entry(1, 199, {"c": 199})]
    assert changed(states, [Entry(2, 1, {}), Entry(2, 2, None)], 0, "ann") == [Entry(2, 2, None)]


def test_the_payload_holds_every_state_and_stays_within_its_bound():
    limits = AwarenessLimits(max_ids_per_owner=1, max_state_bytes=50, max_states=20, max_bytes=600)
    states = AwarenessStates(limits=limits)
    assert states.payload() is None
    for owner in range(30):
        client_id = 2**53 - 1 - owner  # the longest ids and clocks a varUint carries
        states.apply([Entry(client_id, 2**53 - 1, {"s": "x" * 42})], 0, owner)
    payload = states.payload()
    assert payload is not None
    decoded = protocol.decode(protocol.awareness(payload))
    assert list(decoded.entries) == states.entries()
    assert len(decoded.entries) == 12, "600 bytes of 50-byte states"
    assert len(payload) <= limits.max_payload_bytes()
    assert len(protocol.awareness(payload)) <= limits.max_frame_bytes()
    assert states.payload() is payload, "built once until something changes"
    states.apply([Entry(2**53 - 1, 2**53 - 1, None)], 1, 0)
    assert len(protocol.decode(protocol.awareness(states.payload())).entries) == 11


def test_the_bound_of_the_default_limits():
    # What a newcomer can be sent with the default settings: within the 1 MiB frame limit
    # of many websocket clients (Python's websockets among them).
    assert AwarenessLimits().max_frame_bytes() < 1024 * 1024


def test_user_names_are_read_from_whatever_states_clients_sent():
    from crdt.awareness import user_names
    from crdt.protocol import AwarenessEntry

    states = [
        {"user": {"name": "Ada", "color": "#123456"}},
        {"user": {"name": "  Bob \n  Smith "}},
        {"user": {"name": "Ada"}},  # a second tab of Ada's
        {"user": {"name": ""}},
        {"user": "Eve"},
        {"cursor": 3},
        None,
        [1, 2],
        {"user": {"name": "x" * 100}},
    ]
    entries = [AwarenessEntry(i + 1, 1, state) for i, state in enumerate(states)]
    assert user_names(entries) == ["Ada", "Bob Smith", "x" * 40]
    assert user_names(entries, limit=1) == ["Ada"]
    assert user_names([]) == []
