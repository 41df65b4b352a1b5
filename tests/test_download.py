"""Verified, cached and resumable downloads (sentibench.data.download), served by a local
HTTP server, and ``prepare`` from a URL."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from sentibench.core.errors import SentibenchError
from sentibench.data.download import cached_download_path, fetch, partial_path
from tests.helpers import (
    SMALL,
    cli_error,
    contents,
    csv_bytes,
    prepare_quiet,
    small_members,
    write_archive,
)


class _ArchiveHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload`` at /aclImdb_v1.tar.gz, with optional Range support."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        server = self.server
        server.seen.append(self.headers.get("Range"))
        if self.path != "/aclImdb_v1.tar.gz":
            self.send_error(404)
            return
        data, start, wanted = server.payload, 0, self.headers.get("Range")
        if wanted and server.honor_range:
            start = int(wanted.removeprefix("bytes=").removesuffix("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:  # promise everything, send part, hang up
            body, server.cut_after = body[: server.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def archive_server(tmp_path, monkeypatch):
    """A local HTTP server (in a thread) and an empty download cache."""
    monkeypatch.setenv("SENTIBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ArchiveHandler)
    server.daemon_threads = True
    server.payload = write_archive(tmp_path / "served.tar.gz", small_members()).read_bytes()
    server.md5 = hashlib.md5(server.payload).hexdigest()
    server.seen, server.honor_range, server.cut_after = [], True, None
    server.url = f"http://127.0.0.1:{server.server_address[1]}/aclImdb_v1.tar.gz"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_download_is_verified_and_cached(archive_server, tmp_path, capsys):
    path, digests = fetch(archive_server.url, md5=archive_server.md5)
    assert path == cached_download_path(archive_server.url)
    assert path.parent == tmp_path / "cache" and path.read_bytes() == archive_server.payload
    assert digests["md5"] == archive_server.md5 and not partial_path(archive_server.url).exists()
    assert archive_server.seen == [None]
    again, _ = fetch(archive_server.url, md5=archive_server.md5)
    assert again == path and archive_server.seen == [None]
    assert "Using cached download" in capsys.readouterr().out
    path.write_bytes(b"tampered")  # a cached copy that fails its checksum is fetched again
    assert fetch(archive_server.url, md5=archive_server.md5)[0].read_bytes() == (
        archive_server.payload)
    assert archive_server.seen == [None, None]


def test_wrong_md5_keeps_no_file(archive_server, tmp_path):
    with pytest.raises(SentibenchError, match="md5 .* does not match .*download was deleted"):
        fetch(archive_server.url, md5="0" * 32)
    assert contents(tmp_path / "cache") == []


def test_partial_download_resumes_with_a_range_request(archive_server):
    half = len(archive_server.payload) // 2
    part = partial_path(archive_server.url)
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_server.payload[:half])
    path, _ = fetch(archive_server.url, md5=archive_server.md5)
    assert archive_server.seen == [f"bytes={half}-"]
    assert path.read_bytes() == archive_server.payload and not part.exists()


def test_interrupted_download_fails_then_resumes(archive_server):
    archive_server.cut_after = len(archive_server.payload) // 3
    with pytest.raises(SentibenchError, match="download interrupted.*run again to resume"):
        fetch(archive_server.url, md5=archive_server.md5)
    part = partial_path(archive_server.url)
    got = part.stat().st_size
    assert 0 < got < len(archive_server.payload)
    assert not cached_download_path(archive_server.url).exists()
    path, _ = fetch(archive_server.url, md5=archive_server.md5)
    assert archive_server.seen == [None, f"bytes={got}-"]
    assert path.read_bytes() == archive_server.payload


def test_server_ignoring_range_restarts_cleanly(archive_server):
    archive_server.honor_range = False
    half = len(archive_server.payload) // 2
    part = partial_path(archive_server.url)
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_server.payload[:half])
    path, _ = fetch(archive_server.url, md5=archive_server.md5)
    assert archive_server.seen == [f"bytes={half}-"]  # asked, got the whole file (200)
    assert path.read_bytes() == archive_server.payload


@pytest.mark.parametrize("extra", [b"", b"stale bytes from another file"])
def test_complete_or_oversized_part_is_handled(archive_server, extra):
    part = partial_path(archive_server.url)
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_server.payload + extra)
    path, _ = fetch(archive_server.url, md5=archive_server.md5)
    size = len(archive_server.payload) + len(extra)
    # 416 "bytes */N": complete if N is our size, else a fresh download
    assert archive_server.seen == ([f"bytes={size}-"] if not extra else [f"bytes={size}-", None])
    assert path.read_bytes() == archive_server.payload


def test_http_errors_and_unreachable_servers(archive_server):
    with pytest.raises(SentibenchError, match="missing.tar.gz: download failed: HTTP 404"):
        fetch(archive_server.url.replace("aclImdb_v1", "missing"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SentibenchError, match="download failed"):
        fetch(f"http://127.0.0.1:{port}/aclImdb_v1.tar.gz")


def test_prepare_from_a_url(archive_server, small_archive, tmp_path, capsys):
    cfg = {"source": archive_server.url, "md5": archive_server.md5,
           "data_dir": tmp_path / "web", **SMALL}
    manifest, _ = prepare_quiet(capsys, **cfg)
    assert manifest["input"] == {"url": archive_server.url, "md5": archive_server.md5,
                                 "sha256": None}
    assert manifest["archive"]["md5"] == archive_server.md5
    (tmp_path / "local.tar.gz").write_bytes(archive_server.payload)
    prepare_quiet(capsys, source=str(tmp_path / "local.tar.gz"), data_dir=tmp_path / "local",
                  **SMALL)
    assert csv_bytes(tmp_path / "web") == csv_bytes(tmp_path / "local")
    assert "up to date" in prepare_quiet(capsys, **cfg)[1]
    assert archive_server.seen == [None]  # the re-run needed no network


def test_cli_prepare_with_a_wrong_md5_keeps_nothing(archive_server, tmp_path, capsys):
    err = cli_error(capsys, ["prepare", "--source", archive_server.url, "--md5", "f" * 32,
                              "--data-dir", str(tmp_path / "d")])
    assert "does not match the expected " + "f" * 32 in err
    assert contents(tmp_path / "d") == [] and contents(tmp_path / "cache") == []


def test_a_failed_download_says_how_to_use_a_local_archive(tmp_path, monkeypatch):
    from sentibench.data.config import PrepareConfig
    from sentibench.data.imdb import prepare

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.delenv("SENTIBENCH_IMDB_SOURCE", raising=False)
    with pytest.raises(SentibenchError, match="download failed.*Without internet, use a local "
                                              "copy of the archive: --source ") as info:
        prepare(PrepareConfig(source=f"http://127.0.0.1:{port}/aclImdb_v1.tar.gz",
                              data_dir=tmp_path / "d"))
    assert "SENTIBENCH_IMDB_SOURCE" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "d").exists()
