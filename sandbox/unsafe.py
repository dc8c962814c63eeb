"""The ``unsafe-no-isolation`` backend: the fork server as a plain subprocess, rlimits only. Never a default."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings

from sandbox.api import Limits
from sandbox.pool import ForkServerPool, PipeTransport, server_argv

WARNING = ("UNSAFE: running untrusted code WITHOUT isolation (no namespaces, host filesystem, network and "
           "environment visible to the candidate). Use only on a throwaway machine.")


def processes_of(uid: int) -> int:
    """How many processes (tasks) this uid owns on the host now."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += int(open(f"/proc/{name}/status").read().split("Threads:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                pass
    return count


def start(slot: int, limits: Limits, scratch_root: str) -> PipeTransport:
    scratch = tempfile.mkdtemp(prefix=f"slot{slot}-", dir=scratch_root)
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(server_argv(sys.executable, "--scratch", scratch),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, close_fds=True,
                            env={"PATH": os.defpath, "LANG": "C.UTF-8"}, cwd=scratch, start_new_session=True)
    return PipeTransport(proc, stderr)


class UnsafePool(ForkServerPool):
    """Fork servers with rlimits but no namespaces; their scratch dirs are removed on close."""

    def __init__(self, limits: Limits, workers: int):
        warnings.warn(WARNING, stacklevel=3)
        print(WARNING, file=sys.stderr)
        self.scratch_root = tempfile.mkdtemp(prefix="capforecast-unsafe-")
        # RLIMIT_NPROC is ignored for root; for a user it counts all of that user's processes
        processes = 0 if os.geteuid() == 0 else processes_of(os.getuid()) + limits.processes
        super().__init__("unsafe-no-isolation", lambda slot: start(slot, limits, self.scratch_root), limits,
                         workers, lambda slot: processes)

    def close(self) -> None:
        super().close()
        import shutil
        shutil.rmtree(self.scratch_root, ignore_errors=True)


def open_unsafe(limits: Limits, workers: int) -> UnsafePool:
    return UnsafePool(limits, workers)
