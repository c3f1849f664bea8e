"""A small disk of the test's own, to fill up under a running coscribe: a tmpfs mounted as root.

Only the database goes on it (the server's log stays on the ordinary disk, so it can say what
happened). `fill()` writes a filler file until the file system refuses another byte;
`free()` deletes it. `unmount()` runs at teardown, after the server has stopped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

CHUNKS = (1 << 20, 1 << 12)  # fill by the MiB, then the last pages one by one


class DiskUnavailable(RuntimeError):
    """A tmpfs cannot be mounted here (not root, or no permission to mount)."""


class SmallDisk:
    def __init__(self, mountpoint: Path, size_mb: int) -> None:
        self.mountpoint = mountpoint
        self.size_mb = size_mb
        self.filler = mountpoint / "filler"
        self.mounted = False

    def mount(self) -> SmallDisk:
        if os.geteuid() != 0:
            raise DiskUnavailable("mounting a tmpfs needs root")
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        options = f"size={self.size_mb}m,mode=0755"
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.mountpoint)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise DiskUnavailable(f"mount -t tmpfs failed: {result.stderr.strip()}")
        self.mounted = True
        return self

    def fill(self) -> int:
        """Write the filler until ENOSPC; returns how many bytes it took."""
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in CHUNKS:
                block = b"\0" * size
                while True:
                    try:
                        n = os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
                    written += n
                    if n < size:
                        break  # a short write: the disk is full at this block size
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def available(self) -> int:
        stats = os.statvfs(self.mountpoint)
        return stats.f_bavail * stats.f_frsize

    def unmount(self) -> None:
        if not self.mounted:
            return
        result = subprocess.run(
            ["umount", str(self.mountpoint)], capture_output=True, timeout=30, check=False
        )
        if result.returncode != 0:
            # Something still holds a file there (a server that would not stop): detach it
            # now, the kernel frees it when the last file is closed.
            subprocess.run(["umount", "-l", str(self.mountpoint)], timeout=30, check=False)
        self.mounted = False
        with contextlib.suppress(OSError):
            self.mountpoint.rmdir()
