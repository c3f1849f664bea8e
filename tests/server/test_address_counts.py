"""The per-address count of HTTP connections, without a server (the live tests cover the
protocol around it)."""

import logging

from server.handshake import AddressCounts


def test_an_address_holds_up_to_the_limit_and_others_are_not_affected():
    counts = AddressCounts(limit=2)
    assert counts.take("10.0.0.1") and counts.take("10.0.0.1")
    assert not counts.take("10.0.0.1")
    assert counts.take("10.0.0.2")
    counts.release("10.0.0.1")
    assert counts.take("10.0.0.1")
    for _ in range(2):
        counts.release("10.0.0.1")
    counts.release("10.0.0.2")
    assert counts.open == {}, "addresses with nothing open are forgotten"


def test_refusals_are_logged_once_per_interval(caplog):
    counts = AddressCounts(limit=1)
    counts.take("10.0.0.1")
    with caplog.at_level(logging.WARNING, logger="coscribe.handshake"):
        for _ in range(100):
            assert not counts.take("10.0.0.1")
    assert len(caplog.records) == 1
    assert "10.0.0.1: at the limit of 1 HTTP connections" in caplog.records[0].getMessage()
    # A new episode (the address had nothing open in between) gets its own line.
    counts.release("10.0.0.1")
    counts.take("10.0.0.1")
    with caplog.at_level(logging.WARNING, logger="coscribe.handshake"):
        assert not counts.take("10.0.0.1")
    assert len(caplog.records) == 2
