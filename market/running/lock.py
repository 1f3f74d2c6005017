"""One genmarket process per run or game folder: an OS file lock held for the whole command.

`folder_lock(path)` makes the folder if asked (refusing, in one line, a path that is a file, lies
under a file or cannot be written), then takes an exclusive lock on `path/.genmarket.lock` and
holds it until the block ends, errors and Ctrl-C included. A second process (or a second lock in
the same process) is refused at once, naming the folder and the holder's pid. Where `fcntl` is
there (Linux, macOS) the lock is `flock` on the file, which the OS drops when the holder exits
however it exits; the file stays, with the last holder's pid in it. Elsewhere the file itself is
the lock: made with O_CREAT | O_EXCL, holding the pid, removed on release; one left by a process
that no longer runs (killed) is taken over.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from genmarket.market.running.folder import RunFolderError

try:
    import fcntl
except ImportError:  # Windows: the O_EXCL lock file below
    fcntl = None

__all__ = ["LOCK", "folder_lock", "usable_folder"]

LOCK = ".genmarket.lock"


def usable_folder(path: Path, flag: str = "--out") -> None:
    """Make folder `path` (and its parents) if missing. Raises RunFolderError, one line naming
    `flag` and the path, when it is a file, lies under a file or cannot be written into."""
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{flag} {path}: is a file, not a folder: give a folder path (one "
                             "that does not exist is made)")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise RunFolderError(f"{flag} {path}: {above} is a file, not a folder: give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{flag} {path}: cannot make the folder ({exc.strerror or exc}): "
                             f"give another {flag}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunFolderError(f"{flag} {path}: the folder is not writable: give another {flag}, "
                             "or make it writable")


def _busy(path: Path, pid: str) -> RunFolderError:
    who = f" (pid {pid})" if pid.isdigit() else ""
    return RunFolderError(f"{path} is in use by another genmarket process{who}: wait for it to "
                          "finish, or give another --out")


def _holder(lock: Path) -> str:
    """The pid written in the lock file ('' when unreadable)."""
    try:
        return lock.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (without fcntl: Windows, where os.kill would end it)."""
    if os.name == "posix":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process
            return True
        return True
    import ctypes

    kernel = ctypes.windll.kernel32
    handle = kernel.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    code = ctypes.c_ulong()
    kernel.GetExitCodeProcess(handle, ctypes.byref(code))
    kernel.CloseHandle(handle)
    return code.value == 259  # STILL_ACTIVE


def _open(lock: Path, flags: int) -> int:
    try:
        return os.open(lock, flags, 0o644)
    except FileExistsError:
        raise  # the O_EXCL fallback's signal that another process holds the lock
    except OSError as exc:  # not writable, a read-only file system, ...
        raise RunFolderError(f"{lock.parent}: the folder is not writable (cannot make {LOCK}: "
                             f"{exc.strerror}): give another --out, or make it writable") from None


def _flock(path: Path, lock: Path) -> int:
    fd = _open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by another open file: another process, or another lock here
        os.close(fd)
        raise _busy(path, _holder(lock)) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _exclusive(path: Path, lock: Path) -> int:
    for _ in range(2):  # a second try after removing a stale lock
        try:
            fd = _open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            pid = _holder(lock)
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):  # another process took it over
                    lock.unlink()
                continue
            raise _busy(path, pid) from None
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd
    raise _busy(path, _holder(lock))


@contextlib.contextmanager
def folder_lock(path: str | Path, create: bool = True, flag: str = "--out") -> Iterator[Path]:
    """Hold the lock of folder `path` for the block (see the module). create — make the folder
    when missing (else it must exist); flag — the option named in errors. Yields the folder.
    Raises RunFolderError: not a usable folder, or in use by another genmarket process."""
    path = Path(path)
    if create:
        usable_folder(path, flag)
    elif not path.is_dir():
        raise RunFolderError(f"{path} is not a run folder (no such folder)")
    lock = path / LOCK
    fd = _flock(path, lock) if fcntl is not None else _exclusive(path, lock)
    try:
        yield path
    finally:
        os.close(fd)  # drops the flock
        if fcntl is None:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
