"""Attacks on the trusted processes and on the limits (issue 24), for test_sandbox_trusted.py.

Every attack gives wrong answers: it must never pass, never be turned into ``sandbox error``, and the correct
program judged after it must pass on a sandbox whose trusted processes (the fork server and the zygote) are the
same, unstopped processes as before.
"""
from sandbox_channels import TRUSTED
from sandbox_fixtures import WRONG

ATTACKS = {
    # lowered limits were inherited by every later candidate (set_limits failed) and by a respawned zygote
    "lower-the-limits-of-the-trusted-processes": TRUSTED + (
        "import resource\n"
        "for p in trusted():\n"
        "    for r, v in ((resource.RLIMIT_NOFILE, 4), (resource.RLIMIT_FSIZE, 1), (resource.RLIMIT_AS, 64 << 20),\n"
        "                 (resource.RLIMIT_CPU, 1), (resource.RLIMIT_NPROC, 1), (resource.RLIMIT_STACK, 1 << 16)):\n"
        "        try:\n"
        "            resource.prlimit(p, r, (v, v))\n"
        "        except (OSError, ValueError):\n"
        "            pass\n") + WRONG,
    # the server's own /proc scan failed, it reported its own fault and the program became a 'sandbox error'
    "launder-through-the-servers-open-files": (
        "import resource\n"
        "try:\n"
        "    resource.prlimit(1, resource.RLIMIT_NOFILE, (1, 1))\n"
        "except (OSError, ValueError):\n"
        "    pass\n") + WRONG,
    "nice-idle-and-pinned-trusted-processes": TRUSTED + (
        "for p in trusted():\n"
        "    for act in (lambda: os.setpriority(os.PRIO_PROCESS, p, 19),\n"
        "                lambda: os.sched_setscheduler(p, os.SCHED_IDLE, os.sched_param(0)),\n"
        "                lambda: os.sched_setaffinity(p, {0})):\n"
        "        try:\n"
        "            act()\n"
        "        except OSError:\n"
        "            pass\n") + WRONG,
    # setpgid into the server's process group, then a signal to "our own" group
    "join-a-trusted-process-group-then-signal-it": TRUSTED + (
        "import signal\n"
        "def add(a, b):\n"
        "    for p in trusted():\n"
        "        try:\n"
        "            os.setpgid(0, os.getpgid(p))\n"
        "        except OSError:\n"
        "            continue\n"
        "        try:\n"
        "            os.kill(0, signal.SIGKILL)   # the group: the trusted process, and ourselves\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 0\n"),
    # F_SETOWN + F_SETSIG + O_ASYNC: the kernel sends the chosen signal to the owner when the pipe is readable
    "f-setown-o-async-signals-to-trusted-processes": TRUSTED + (
        "import fcntl, signal\n"
        "keep = []\n"
        "for target in trusted() + [-p for p in trusted()]:\n"
        "    for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
        "        r, w = os.pipe()\n"
        "        try:\n"
        "            fcntl.fcntl(r, fcntl.F_SETOWN, target)\n"
        "            fcntl.fcntl(r, 10, sig)   # F_SETSIG\n"
        "            fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC | os.O_NONBLOCK)\n"
        "            os.write(w, b'x')\n"
        "        except OSError:\n"
        "            pass\n"
        "        keep.append((r, w))\n") + WRONG,
    "pidfd-signals-to-trusted-processes": TRUSTED + (
        "import ctypes, platform, signal\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for p in trusted():\n"
        "    fd = libc.syscall(434, p, 0)   # pidfd_open: the same number on x86_64 and aarch64\n"
        "    if fd >= 0:\n"
        "        libc.syscall(424, fd, signal.SIGKILL, None, 0)   # pidfd_send_signal\n") + WRONG,
    "kill-and-stop-every-process-it-can-name": (
        "import os, signal\n"
        "for target in (-1, 1, os.getppid()):\n"
        "    for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
        "        if target not in (0, os.getpid()):\n"
        "            try:\n"
        "                os.kill(target, sig)\n"
        "            except OSError:\n"
        "                pass\n") + WRONG,
    # file descriptors and garbage on the judge's socket, so that the server's own fd table fills up
    "file-descriptors-flooding-the-judge": (
        "import os, socket\n"
        "judge = socket.socket(fileno=3)\n"
        "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(40)]\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        socket.send_fds(judge, [b'\\x00\\x00\\x00\\x02{}'], fds)\n"
        "    except OSError:\n"
        "        break\n") + WRONG,
}

# 8 children made one after the other with clone(CLONE_PARENT), each burning 0.15 CPU-s: children of the
# candidate's parent (the zygote), so that an account of the candidate's processes never saw them (2.8 CPU-s
# passed under 0.25 s)
CLONE_PARENT_CPU = (
    "import ctypes, os, platform, time\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "CLONE = {'x86_64': 56, 'aarch64': 220}[platform.machine()]\n"
    "def spawn():\n"
    "    if libc.syscall(CLONE, 0x8000 | 17, 0, 0, 0, 0) == 0:   # CLONE_PARENT | SIGCHLD\n"
    "        start = time.process_time()\n"
    "        while time.process_time() - start < 0.15:\n"
    "            pass\n"
    "        os._exit(0)\n"
    "    time.sleep(0.2)\n"
    "burnt = False\n"
    "def add(a, b):\n"
    "    global burnt\n"
    "    for _ in range(0 if burnt else 8):\n"
    "        spawn()\n"
    "    burnt = True\n"
    "    return a + b\n")

# Socket buffers are not charged to any memory cgroup: a program tries to grow and fill some.
SOCKET_BUFFERS = (
    "import socket\n"
    "def add(a, b):\n"
    "    total, keep = 0, []\n"
    "    for _ in range(8):\n"
    "        x, y = socket.socketpair()\n"
    "        try:\n"
    "            x.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 20)\n"
    "        except OSError:\n"
    "            pass\n"
    "        x.setblocking(False)\n"
    "        while True:\n"
    "            try:\n"
    "                total += x.send(b'x' * 65536)\n"
    "            except OSError:\n"
    "                break\n"
    "        keep.append((x, y))\n"
    "    print('QUEUED', total, flush=True)\n"
    "    return a + b\n")
PAIRS = 8

# Each call with arguments that make it succeed or fail otherwise (EFAULT, EBADF, EINVAL, a child) if it were
# allowed; the filter must answer with the errno given. Names as in sandbox.seccomp.NUMBERS.
# (bpf, syslog and mount are left out: without privileges they fail with EPERM anyway; the filter's own test
# covers them.)
DENIED_CALLS = {
    "io_uring_setup": ("(1, None)", 1), "userfaultfd": ("(1,)", 1), "perf_event_open": ("(None, 0, -1, -1, 0)", 1),
    "keyctl": ("(0, -4)", 1), "add_key": ("(b'user', b'x', b'y', 1, -4)", 1),
    "request_key": ("(b'user', b'x', None, 0)", 1), "ptrace": ("(0, 0, 0, 0)", 1),
    "process_vm_readv": ("(os.getpid(), None, 0, None, 0, 0)", 1), "unshare": ("(0,)", 1), "setns": ("(-1, 0)", 1),
    "sysinfo": ("(None,)", 1), "cachestat": ("(-1, None, None, 0)", 1), "preadv2": ("(-1, None, 0, 0, 0, 0)", 1),
    "kcmp": ("(os.getpid(), os.getpid(), 0, 0, 0)", 1), "pidfd_getfd": ("(-1, 0, 0)", 1),
    "fadvise64": ("(-1, 0, 0, 0)", 1), "shmget": ("(0, 4096, 0o600)", 1),
    "mq_open": ("(b'x', 0o100 | 2, 0o600, None)", 1),
    "clone": ("(0x10000000 | 17, 0, 0, 0, 0)", 1),     # CLONE_NEWUSER | SIGCHLD: a child if allowed
    "clone3": ("(None, 0)", 38),                     # ENOSYS: the C library falls back to clone
    "socket": ("(16, 3, 0)", 97),                    # AF_NETLINK: EAFNOSUPPORT
    "setsockopt": ("(SOCK, 1, 7, ctypes.byref(ctypes.c_int(1 << 24)), 4)", 1),   # SO_SNDBUF
}
