"""One writer per run file: an advisory lock ``NAME.h5.lock`` held for the whole run.

The lock is ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the file ``NAME.h5.lock``,
which holds the holder's ``pid`` and ``host`` (JSON) so a refused writer can
name it.  The kernel drops a ``flock`` when its holder dies (``kill -9``
included), so a lock file left behind by a killed run is simply taken over.

Stale locks: where the lock is still held but its recorded holder is a process
of *this* host that no longer exists (the descriptor leaked into a child that
outlived it), the lock file is unlinked and made afresh; the old holder keeps
an inode nobody else looks at.  A holder on another host (a shared file
system) is never judged stale: it is named, and the user decides.

Readers never take the lock (:func:`wgfsim.io.read_file` reads published
snapshots only).

Releasing unlinks the lock file *before* closing it, and a writer that wins
``flock`` checks that the path still names the inode it locked (else it
retries), so two writers can never both believe they hold it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import socket

from .fs import open_lock

__all__ = ["RunLock", "LockHeld", "lock_path"]


class LockHeld(Exception):
    """Another live process writes this file (exit code 2 at the command line)."""


def lock_path(path) -> pathlib.Path:
    """``NAME.h5.lock`` beside the final ``NAME.h5``."""
    p = pathlib.Path(path)
    if p.name.endswith(".partial"):
        p = p.with_name(p.name[: -len(".partial")])
    return p.with_name(p.name + ".lock")


def _holder(p: pathlib.Path) -> dict:
    try:
        info = json.loads(p.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # unknown: never judged stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class RunLock:
    """The exclusive write lock of one run file (a context manager).

    ``RunLock(path).acquire()`` returns the lock or raises :class:`LockHeld`
    naming the holder (pid and host); :meth:`release` (or leaving the
    ``with`` block) gives it back and removes the lock file.
    """

    def __init__(self, path):
        self.path = lock_path(path)
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        host = socket.gethostname()
        for _ in range(10):  # a concurrent release or stale removal moves the path under us: try again
            fd = open_lock(self.path)  # O_NOFOLLOW: a symlink planted at our name is refused, never written through
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                    raise
                info = _holder(self.path)
                if info.get("host") == host and not _alive(info.get("pid")):
                    try:  # stale: its holder is gone from this host, only a leaked descriptor keeps it
                        self.path.unlink()
                    except FileNotFoundError:
                        pass
                    continue
                who = f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"
                raise LockHeld(
                    f"{self.path.with_suffix('')}: another wgfsim process is writing this file ({who}, lock "
                    f"{self.path.name}); wait for it to finish, or use another output folder"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released (unlinked) between our open and our flock
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": host}).encode())
            self._fd = fd
            return self
        raise LockHeld(f"{self.path}: could not take the lock (it kept changing hands)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()
