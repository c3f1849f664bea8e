"""server/web.py without a browser: cache headers, gzip, and the 503 page without a build."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.testclient import TestClient

from server import web


def client(dist: Path, monkeypatch: pytest.MonkeyPatch, packaged: Path | None = None) -> TestClient:
    """The routes over a checkout's build at `dist` and, if given, a wheel's at `packaged`."""
    monkeypatch.setattr(web, "SOURCE", dist)
    monkeypatch.setattr(web, "PACKAGED", packaged or dist / "not-installed")
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


def test_an_installed_build_is_served_before_a_checkout_one(tmp_path, monkeypatch):
    for name in ("checkout", "installed"):
        (tmp_path / name / "assets").mkdir(parents=True)
        (tmp_path / name / "index.html").write_text(f"<title>{name}</title>")
        (tmp_path / name / "assets" / f"{name}.css").write_text("body {}")
    http = client(tmp_path / "checkout", monkeypatch, packaged=tmp_path / "installed")
    assert "installed" in http.get("/").text
    assert http.get("/assets/installed.css").status_code == 200
    assert http.get("/assets/checkout.css").status_code == 404
    # A package folder without a build (an editable install) leaves the checkout's in use.
    http = client(tmp_path / "checkout", monkeypatch, packaged=tmp_path / "empty")
    assert "checkout" in http.get("/").text
