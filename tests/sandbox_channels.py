"""Writer/reader pairs for the isolation property (issue 24): can one program tell the next a single bit?

Each channel is a writer prelude (``BIT`` is 0 or 1) that puts the bit into some kernel state, and a reader prelude
that sets ``BIT`` (its best guess) and ``SEEN`` (the raw value it read, printed, so a test can show the reader read
something real). The harness (test_sandbox_isolation.py) runs writer then reader on one sandbox, many times, and
measures the reader's accuracy. ``control`` says whether the same pair must communicate when both run inside one
program (a writer child, then a reader child): the proof that the pair is a working channel and that the test
could fail. Channels without a control are closed inside a program too (the state is denied or hidden); they
were open on the code before issue 24 (test_sandbox_isolation's docstring says where).
"""
from dataclasses import dataclass

TRUSTED = (   # the processes a candidate would attack: its parent, its grandparent, PID 1
    "import os\n"
    "def trusted():\n"
    "    pids = {os.getppid(), 1}\n"
    "    try:\n"
    "        pids.add(int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1]))\n"
    "    except (OSError, ValueError, IndexError):\n"
    "        pass\n"
    "    return sorted(p for p in pids if p > 0 and p != os.getpid())\n"
)
# A counter the writer can only advance: it stops at 0 (bit 0) or M/2 (bit 1) mod M; the reader sees a bit more.
MOD = (
    "def half(value, m):\n"
    "    return 1 if value % m >= m // 2 else 0\n"
)


@dataclass(frozen=True)
class Channel:
    writer: str
    reader: str
    control: bool = True   # the pair communicates within one program


CHANNELS = {
    # resource limits of the zygote or the server, inherited by every later candidate
    "rlimits-of-the-trusted-processes": Channel(
        TRUSTED + "import resource\n"
        "for p in trusted():\n"
        "    try:\n"
        "        hard = resource.prlimit(p, resource.RLIMIT_RTTIME)[1]\n"
        "        resource.prlimit(p, resource.RLIMIT_RTTIME, (777000 + BIT, hard))\n"
        "    except (OSError, ValueError):\n"
        "        pass\n",
        "import resource\n"
        "SEEN = resource.getrlimit(resource.RLIMIT_RTTIME)\n"
        "BIT = 1 if SEEN[0] == 777001 else 0\n"),
    # scheduling policy and CPU affinity of the zygote or the server, inherited by every later candidate
    "scheduling-of-the-trusted-processes": Channel(
        TRUSTED +
        "for p in trusted():\n"
        "    try:\n"
        "        os.sched_setscheduler(p, os.SCHED_BATCH if BIT else os.SCHED_OTHER, os.sched_param(0))\n"
        "    except OSError:\n"
        "        pass\n",
        "import os\n"
        "SEEN = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0), sorted(os.sched_getaffinity(0)))\n"
        "BIT = 1 if SEEN[0] == os.SCHED_BATCH else 0\n"),
    # a tmpfs's inode counter: files are deleted, the counter is never rewound
    "tmpfs-inode-numbers": Channel(
        MOD + "import os\n"
        "for d in ('/tmp', '/dev/shm', '.'):\n"
        "    for _ in range(4097):\n"
        "        try:\n"
        "            fd = os.open(os.path.join(d, 'capforecast-ino'), os.O_CREAT | os.O_WRONLY, 0o600)\n"
        "        except OSError:\n"
        "            break\n"
        "        ino = os.fstat(fd).st_ino\n"
        "        os.close(fd)\n"
        "        os.unlink(os.path.join(d, 'capforecast-ino'))\n"
        "        if ino % 4096 == 2048 * BIT:\n"
        "            break\n",
        MOD + "import os\n"
        "fd = os.open('capforecast-reader', os.O_CREAT | os.O_WRONLY, 0o600)\n"
        "SEEN = os.fstat(fd).st_ino\n"
        "BIT = half(SEEN, 4096)\n"),
    # the PID counter of the sandbox's PID namespace
    "pid-numbers": Channel(
        "import os\n"
        "for _ in range(129):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
        "    if pid % 128 == 64 * BIT:\n"
        "        break\n",
        MOD + "import os\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "SEEN = [pid]\n"
        "for path in ('/proc/sys/kernel/ns_last_pid', '/proc/loadavg'):\n"
        "    try:\n"
        "        SEEN.append(open(path).read().strip())\n"
        "    except OSError:\n"
        "        pass\n"
        "BIT = half(pid - 1, 128)\n"),
    # access and modification times of every path a candidate can see (bwrap's /tmp and /dev/shm were its own)
    "timestamps-of-visible-paths": Channel(
        "import os\n"
        "for path in ('/', '/tmp', '/dev/shm', '/dev', '/dev/null', '.', '/etc', '/usr', '/run', '/proc'):\n"
        "    try:\n"
        "        os.utime(path, (1_000_000_000 + BIT, 1_000_000_000 + BIT))\n"
        "    except OSError:\n"
        "        pass\n",
        "import os\n"
        "SEEN = {}\n"
        "for path in ('/', '/tmp', '/dev/shm', '/dev', '/dev/null', '.', '/etc', '/usr', '/run', '/proc'):\n"
        "    try:\n"
        "        st = os.stat(path)\n"
        "        SEEN[path] = (int(st.st_atime), int(st.st_mtime))\n"
        "    except OSError:\n"
        "        pass\n"
        "BIT = 1 if any(1_000_000_001 in times for times in SEEN.values()) else 0\n"),
    # TIME_WAIT sockets in the sandbox's network namespace (the most recent one's port is the bit)
    "time-wait-sockets": Channel(
        "import socket\n"
        "try:\n"
        "    srv = socket.socket()\n"
        "    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "    srv.bind(('127.0.0.1', 47011 + BIT))\n"
        "    srv.listen()\n"
        "    cli = socket.create_connection(('127.0.0.1', 47011 + BIT), timeout=1)\n"
        "    conn, _ = srv.accept()\n"
        "    conn.close()   # the side that closes first keeps the TIME_WAIT\n"
        "    cli.close()\n"
        "    srv.close()\n"
        "except OSError:\n"
        "    pass\n",
        "SEEN = []\n"
        "try:\n"
        "    for line in open('/proc/self/net/tcp').read().splitlines()[1:]:\n"
        "        f = line.split()\n"
        "        port, state, when = int(f[1].split(':')[1], 16), f[3], int(f[5].split(':')[1], 16)\n"
        "        if state == '06' and port in (47011, 47012):\n"
        "            SEEN.append((when, port))\n"
        "except OSError:\n"
        "    pass\n"
        "BIT = max(SEEN)[1] - 47011 if SEEN else 0\n",
        control=False),   # a program's network namespace has no loopback up: no TCP connection at all
    # a cgroup's statistics (docker showed the container's memory cgroup): page faults, mod 8192
    "cgroup-statistics": Channel(
        MOD + "def faults():\n"
        "    for path in ('/sys/fs/cgroup/memory/memory.stat', '/sys/fs/cgroup/memory.stat'):\n"
        "        try:\n"
        "            return dict(line.split() for line in open(path))['pgfault']\n"
        "        except (OSError, KeyError, ValueError):\n"
        "            pass\n"
        "now = faults()\n"
        "if now is not None:\n"
        "    need = (4096 * BIT - int(now)) % 8192\n"
        "    buf = bytearray(need * 4096 + 1)\n"
        "    buf[::4096] = b'x' * len(buf[::4096])\n",
        MOD + "SEEN = None\n"
        "for path in ('/sys/fs/cgroup/memory/memory.stat', '/sys/fs/cgroup/memory.stat'):\n"
        "    try:\n"
        "        SEEN = int(dict(line.split() for line in open(path))['pgfault'])\n"
        "        break\n"
        "    except (OSError, KeyError, ValueError):\n"
        "        pass\n"
        "BIT = half(SEEN, 8192) if SEEN is not None else 0\n",
        control=False),   # no cgroup file is visible to a candidate
    # host-wide counters in /proc (forks since boot): noisy on a shared host, but a writer moves them at will
    "host-wide-proc-counters": Channel(
        MOD + "import os\n"
        "def forks():\n"
        "    for line in open('/proc/stat'):\n"
        "        if line.startswith('processes'):\n"
        "            return int(line.split()[1])\n"
        "try:\n"
        "    for _ in range(65):\n"
        "        if forks() % 64 == 32 * BIT:\n"
        "            break\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            os._exit(0)\n"
        "        os.waitpid(pid, 0)\n"
        "except OSError:\n"
        "    pass\n",
        MOD + "SEEN = None\n"
        "try:\n"
        "    SEEN = [int(line.split()[1]) for line in open('/proc/stat') if line.startswith('processes')][0]\n"
        "except OSError:\n"
        "    pass\n"
        "BIT = half(SEEN - 2, 64) if SEEN is not None else 0\n",
        control=False),   # /proc shows a program its own processes only
    # SysV IPC ids (each shmget advances the id's sequence number)
    "sysv-ipc-ids": Channel(
        "import ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        "for _ in range(3):\n"
        "    sid = libc.shmget(0, 4096, 0o600)\n"
        "    if sid < 0 or (sid >> 15) % 2 == BIT:\n"
        "        break\n"
        "    libc.shmctl(sid, 0, None)\n",
        "import ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        "SEEN = libc.shmget(0, 4096, 0o600)\n"
        "BIT = (SEEN >> 15) % 2 if SEEN >= 0 else 0\n",
        control=False),   # SysV IPC cannot be created at all
    # the user keyring
    "keyrings": Channel(
        "import ctypes, platform\n"
        "ADD_KEY = {'x86_64': 248, 'aarch64': 217}[platform.machine()]\n"
        "ctypes.CDLL(None).syscall(ADD_KEY, b'user', b'capforecast-bit', str(BIT).encode(), 1, -4)\n",
        "import ctypes, platform\n"
        "KEYCTL = {'x86_64': 250, 'aarch64': 219}[platform.machine()]\n"
        "SEEN = ctypes.CDLL(None).syscall(KEYCTL, 10, -4, b'user', b'capforecast-bit', 0)\n"
        "buf = ctypes.create_string_buffer(8)\n"
        "read = ctypes.CDLL(None).syscall(KEYCTL, 11, SEEN, buf, 8) if SEEN >= 0 else -1\n"
        "BIT = 1 if read > 0 and buf.value == b'1' else 0\n",
        control=False),   # keys cannot be made at all
    # the host name of the UTS namespace
    "hostname": Channel(
        "import socket\n"
        "try:\n"
        "    socket.sethostname('capforecast-%d' % BIT)\n"
        "except OSError:\n"
        "    pass\n",
        "import socket\n"
        "SEEN = socket.gethostname()\n"
        "BIT = 1 if SEEN == 'capforecast-1' else 0\n",
        control=False),   # no program may change it
    # an abstract unix socket name and a deleted 8 MB file, kept alive after the writer's death by a cycle of
    # unix sockets that hold each other (and themselves) in flight, until the kernel's collector finds them
    "sockets-and-files-kept-in-flight": Channel(
        "import os, socket\n"
        "if BIT:\n"
        "    fd = os.open('/tmp/capforecast-space', os.O_CREAT | os.O_RDWR, 0o600)\n"
        "    os.write(fd, b'x' * (8 << 20))\n"
        "    os.unlink('/tmp/capforecast-space')\n"
        "    named = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "    named.bind('\\0capforecast-bit')\n"
        "    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "    socket.send_fds(a, [b'x'], [fd, named.fileno(), a.fileno(), b.fileno()])\n",
        "import os, socket\n"
        "st = os.statvfs('/tmp')\n"
        "probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "try:\n"
        "    probe.bind('\\0capforecast-bit')\n"
        "    taken = False\n"
        "except OSError:\n"
        "    taken = True\n"
        "SEEN = (st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, taken)\n"
        "BIT = 1 if taken or SEEN[0] < SEEN[1] - (4 << 20) else 0\n"),
}
