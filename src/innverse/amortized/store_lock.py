"""The writer lock of a simulation store: one writer at a time, and a busy store says who holds it.

A writer holds an exclusive advisory lock (``flock``) on a small sidecar file next to the store,
``.<store name>.lock``, for as long as the store is open for appending; the file names the
holder (process id, host, start time, command line). A second writer waits for it up to a
timeout, then fails with :class:`StoreBusyError` naming the holder; a reader refuses a store
that is being written (the rows in flight are not committed yet). The operating system drops
the lock when its process ends, however it ends (``kill -9`` included), so a lock is never
stale; the holder removes the file when it closes the store.

Why a sidecar file and not HDF5's own file locking: HDF5's lock is switched off on many shared
file systems (``HDF5_USE_FILE_LOCKING=FALSE``), and then two writers interleave their commits and
lose rows; where it is on, the second writer gets a bare ``BlockingIOError`` with no holder.
``flock`` works on local file systems and on NFSv4 (where Linux maps it to POSIX locks); on
systems without ``fcntl`` (Windows) the store is not locked.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import socket
import sys
import time
import weakref
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["StoreBusyError", "StoreLock", "check_not_writing", "lock_path"]

#: seconds between attempts while waiting for a busy store
POLL = 0.05
#: errors of a file system that does not support locks (some network file systems)
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)

logger = logging.getLogger("innverse")


class StoreBusyError(BlockingIOError):
    """A simulation store is being written by another process (or held open by another program)."""

    def __str__(self) -> str:  # BlockingIOError would print "[Errno None] ..." for a plain message
        return str(self.args[0]) if self.args else "the simulation store is busy"


def lock_path(store: str | os.PathLike) -> Path:
    """The sidecar lock file of ``store``: ``.<name>.lock`` in the same folder."""
    store = Path(store)
    return store.with_name(f".{store.name}.lock")


def _holder(lock: Path) -> str:
    """Who holds ``lock``, as written by the holder (or ``"another process"`` while it is being written)."""
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return (f"process {info['pid']} on {info['host']} since {info['since']} "
                f"({info.get('command', '?')})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _busy(store: Path, lock: Path, waited: float) -> StoreBusyError:
    wait = f" (waited {waited:g} s)" if waited else ""
    return StoreBusyError(f"SimulationStore: {store} is busy: it is being written by {_holder(lock)}{wait}; "
                          "wait until that finishes (or pass a timeout), or use another store")


def _release(fd: int, lock: str, inode: int) -> None:
    """Remove the lock file (only if it is still ours), then drop the lock by closing it."""
    try:
        if os.stat(lock).st_ino == inode:
            os.unlink(lock)
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass


class StoreLock:
    """An exclusive lock on a store, held until :meth:`release` (or until its owner is collected)."""

    def __init__(self, store: Path, fd: int, inode: int) -> None:
        self.store, self.path = store, lock_path(store)
        self._finalizer = weakref.finalize(self, _release, fd, str(self.path), inode)

    @classmethod
    def acquire(cls, store: str | os.PathLike, timeout: float = 0.0) -> StoreLock | None:
        """Take the writer lock of ``store``, waiting up to ``timeout`` seconds.

        Returns ``None`` where the system or the file system has no ``flock`` (the store is then not
        locked; a warning says so).

        Raises:
            StoreBusyError: another writer holds the lock after ``timeout`` seconds.
            OSError: the lock file cannot be created (e.g. a read-only folder).
        """
        if fcntl is None:  # pragma: no cover - Windows
            return None
        store, start = Path(store), time.monotonic()
        lock = lock_path(store)
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise type(err)(err.errno, f"SimulationStore: cannot create the lock file {lock} "
                                           f"({err.strerror}); is the folder writable?") from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                waited = time.monotonic() - start
                if waited >= timeout:
                    raise _busy(store, lock, round(waited, 1) if timeout else 0) from None
                time.sleep(POLL)
                continue
            except OSError as err:
                os.close(fd)
                if err.errno not in NO_LOCKS:
                    raise
                logger.warning("SimulationStore: the file system of %s does not support locks (%s); a second "
                               "writer would not be detected", store, err.strerror)
                return None
            inode = os.fstat(fd).st_ino
            try:
                same = os.stat(lock).st_ino == inode
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file after we opened it: try again
                os.close(fd)
                continue
            info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:200],
                    "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(info).encode())
            return cls(store, fd, inode)

    def release(self) -> None:
        self._finalizer()


def check_not_writing(store: str | os.PathLike, timeout: float = 0.0) -> None:
    """For a reader: wait up to ``timeout`` seconds while ``store`` is being written.

    Raises:
        StoreBusyError: a writer still holds the store after ``timeout`` seconds.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return
    store, start = Path(store), time.monotonic()
    lock = lock_path(store)
    while True:
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:  # no lock file: nobody writes (or it cannot be read: nothing to learn)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return
        except OSError as err:
            if not isinstance(err, BlockingIOError):  # e.g. no locks on this file system: nothing to learn
                return
            waited = time.monotonic() - start
            if waited >= timeout:
                raise _busy(store, lock, round(waited, 1) if timeout else 0) from None
        finally:
            os.close(fd)
        time.sleep(POLL)
