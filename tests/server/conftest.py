import pytest

from tests.live_server import LiveServer


@pytest.fixture
def server(tmp_path):
    """A real `coscribe serve` on SQLite, on a free port."""
    with LiveServer({"COSCRIBE_SQLITE_PATH": str(tmp_path / "notes.sqlite")}, tmp_path) as live:
        yield live
