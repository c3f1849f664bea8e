"""server/web.py without a browser: cache headers, gzip, and the 503 page without a build."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.testclient import TestClient

from server import web


def client(dist: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(web, "DIST", dist)
    app = Starlette(routes=web.routes(), middleware=[Middleware(GZipMiddleware, minimum_size=500)])
    return TestClient(app)


def test_without_a_build_the_page_says_how_to_make_one(tmp_path, monkeypatch):
    response = client(tmp_path / "missing", monkeypatch).get("/")
    assert response.status_code == 503
    assert "scripts/serve" in response.text and "npm --prefix web run build" in response.text


def test_index_is_not_cached_and_assets_are_cached_and_compressed(tmp_path, monkeypatch):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>x</title>")
    (tmp_path / "assets" / "index-abcdef12.js").write_text("console.log(1);\n" * 200)
    http = client(tmp_path, monkeypatch)
    index = http.get("/")
    assert index.status_code == 200 and index.headers["cache-control"] == "no-cache"
    asset = http.get("/assets/index-abcdef12.js", headers={"Accept-Encoding": "gzip"})
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asset.headers["content-encoding"] == "gzip"
    assert http.get("/assets/nope.js").status_code == 404


def test_the_service_worker_is_served_uncached(tmp_path, monkeypatch):
    http = client(tmp_path, monkeypatch)
    assert http.get("/sw.js").status_code == 404
    (tmp_path / "sw.js").write_text("self.addEventListener('fetch', () => {})\n")
    script = http.get("/sw.js")
    assert script.status_code == 200 and script.headers["cache-control"] == "no-cache"
    assert script.headers["content-type"].startswith("text/javascript")
