from crdt.awareness import AwarenessStates
from crdt.protocol import AwarenessEntry as Entry


def test_newer_clock_wins_and_older_is_ignored():
    states = AwarenessStates()
    assert states.apply([Entry(1, 2, {"name": "a"})], now=0) == [Entry(1, 2, {"name": "a"})]
    assert states.apply([Entry(1, 1, {"name": "old"})], now=1) == []
    assert states.apply([Entry(1, 2, {"name": "same clock"})], now=1) == []
    assert states.entries() == [Entry(1, 2, {"name": "a"})]
    assert states.apply([Entry(1, 3, {"name": "b"})], now=2) == [Entry(1, 3, {"name": "b"})]


def test_removal_with_equal_or_newer_clock():
    states = AwarenessStates()
    states.apply([Entry(1, 2, {"x": 1}), Entry(2, 5, {"y": 1})], now=0)
    assert states.apply([Entry(1, 2, None)], now=1) == [Entry(1, 2, None)]
    assert states.apply([Entry(2, 6, None)], now=1) == [Entry(2, 6, None)]
    assert len(states) == 0
    # Removing a client never seen changes nothing (and is not re-broadcast).
    assert states.apply([Entry(3, 1, None)], now=1) == []


def test_remove_returns_entries_with_the_next_clock():
    states = AwarenessStates()
    states.apply([Entry(7, 4, {"u": 1}), Entry(8, 1, {"u": 2})], now=0)
    assert states.remove([7, 99]) == [Entry(7, 5, None)]
    assert 7 not in states and 8 in states


def test_states_time_out_unless_renewed():
    states = AwarenessStates(timeout_s=30)
    states.apply([Entry(1, 1, {"a": 1}), Entry(2, 1, {"b": 1})], now=0)
    states.apply([Entry(2, 2, {"b": 2})], now=20)
    assert states.expire(now=29.9) == []
    assert states.expire(now=30) == [Entry(1, 2, None)]
    assert states.expire(now=49.9) == []
    assert states.expire(now=50) == [Entry(2, 3, None)]
    assert len(states) == 0


def test_a_stale_echo_cannot_bring_a_removed_client_back():
    states = AwarenessStates(timeout_s=30)
    states.apply([Entry(1, 4, {"name": "a"})], now=0)
    assert states.remove([1], now=1) == [Entry(1, 5, None)]
    assert states.apply([Entry(1, 4, {"name": "a"})], now=2) == [], "an echo of the old state"
    assert 1 not in states
    # The client's own renewal (its clock + 1) is welcome back.
    assert states.apply([Entry(1, 5, {"name": "a"})], now=3) == [Entry(1, 5, {"name": "a"})]


def test_removal_records_are_forgotten_after_the_timeout():
    states = AwarenessStates(timeout_s=30)
    states.apply([Entry(1, 4, {"x": 1})], now=0)
    states.apply([Entry(1, 4, None)], now=1)
    states.expire(now=40)
    assert states.apply([Entry(1, 1, {"x": 2})], now=41) == [Entry(1, 1, {"x": 2})]
