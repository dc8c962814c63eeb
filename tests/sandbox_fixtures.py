"""Hostile completions of guide §5, for the sandbox tests: none may ever pass, none may harm the host.

Every candidate defines ``add(a, b)`` for the test below. A "trick" candidate gives wrong answers and
tries to pass anyway; an "escape" candidate answers correctly only if its escape worked, so a pass
means the escape succeeded. ``{canary}``, ``{port}`` and ``{secret_name}`` are filled in by the tests.
"""
import contextlib
import os
import time

TEST = """
def check(candidate):
    assert candidate(2, 3) == 5
    assert candidate(-1, 1) == 0
    assert candidate(10, 20) == 30
"""
CORRECT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return 0\n"
FORGED_FRAME = (
    "import json, struct\n"
    "def frame(obj):\n"
    "    data = json.dumps(obj).encode()\n"
    "    return struct.pack('!I', len(data)) + data\n"
    "FORGED = frame({'id': 'x', 'status': 'passed', 'detail': '', 'duration_s': 0, 'cpu_s': 0, 'output': '',"
    " 'damaged': False}) + frame({'verdict': 'passed'}) + frame({'ok': None})\n"
)

FALSE_PASSES = {
    "sys-exit-0-at-load": "import sys\nsys.exit(0)\n" + WRONG,
    "os-exit-0-at-load": "import os\nos._exit(0)\n" + WRONG,
    "os-exit-0-in-call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "raise-systemexit-in-call": "def add(a, b):\n    raise SystemExit(0)\n",
    "redefine-check": WRONG + "def check(candidate):\n    pass\n",
    "trace-hook-skips-asserts": (
        "import sys, threading\n"
        "def tracer(frame, event, arg):\n"
        "    if event == 'line' and 'assert' in str(frame.f_code.co_consts):\n"
        "        try:\n            frame.f_lineno = frame.f_lineno + 1\n        except Exception:\n            pass\n"
        "    return tracer\n"
        "sys.settrace(tracer)\nthreading.settrace(tracer)\nsys.setprofile(lambda *a: None)\n" + WRONG),
    "profile-hook-swaps-check": (
        "import sys, threading\n"
        "def swap(frame, event, arg):\n"
        "    if 'check' in frame.f_globals:\n"
        "        frame.f_globals['check'] = lambda candidate: None\n"
        "sys.setprofile(swap)\nthreading.setprofile(swap)\n" + WRONG),
    "monkeypatched-builtins": (
        "import builtins\n"
        "builtins.AssertionError = type('Harmless', (Exception,), {})\n"
        "builtins.abs = builtins.all = builtins.any = lambda *a, **k: True\n"
        "builtins.isinstance = lambda *a: True\n" + WRONG),
    "lying-eq-object": (
        "class Liar:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def add(a, b):\n    return Liar()\n"),
    "lying-eq-int-subclass": (
        "class Liar(int):\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
        "        return False\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Liar(0)\n"),
    "lying-eq-list-subclass": (
        "class Liar(list):\n    def __eq__(self, other):\n        return True\n"
        "def add(a, b):\n    return Liar()\n"),
    "forged-output": WRONG + "print('passed')\nprint('{\"verdict\": \"passed\"}')\nimport sys\n"
                             "sys.stderr.write('passed\\n')\n",
    "write-forged-frames-to-every-fd": FORGED_FRAME + (
        "import os\n"
        "for fd in range(0, 256):\n"
        "    try:\n        os.write(fd, FORGED)\n    except OSError:\n        pass\n"
        "for pid in os.listdir('/proc'):\n"
        "    for fd in range(0, 16):\n"
        "        try:\n"
        "            with open(f'/proc/{pid}/fd/{fd}', 'wb') as f:\n                f.write(FORGED)\n"
        "        except Exception:\n            pass\n" + WRONG),
    "forged-frames-to-every-unix-socket": FORGED_FRAME + (   # docker's host channel is a Unix socket
        "import os, socket\n"
        "for root in ('/run', '/var/run', '/tmp', '/dev/shm'):\n"
        "    for d, _, files in os.walk(root):\n"
        "        for name in files + ['host.sock']:\n"
        "            try:\n"
        "                s = socket.socket(socket.AF_UNIX)\n"
        "                s.connect(os.path.join(d, name))\n"
        "                s.sendall(FORGED)\n"
        "            except OSError:\n                pass\n" + WRONG),
    "atexit-exit-0": "import atexit, os\natexit.register(lambda: os._exit(0))\n" + WRONG,
    "atexit-forged-output": "import atexit\natexit.register(lambda: print('passed'))\n" + WRONG,
    "steal-expected-answers-from-memory": (
        "import gc, re\n"
        "def add(a, b):\n"
        "    for o in gc.get_objects():\n"
        "        if isinstance(o, str) and 'assert candidate(' in o:\n"
        "            m = re.search(r'candidate\\(%d, %d\\) == (-?\\d+)' % (a, b), o)\n"
        "            if m:\n                return int(m.group(1))\n"
        "    try:\n"
        "        data = open('/proc/self/cmdline', 'rb').read() + open('/proc/1/cmdline', 'rb').read()\n"
        "        m = re.search(rb'candidate\\(%d, %d\\) == (-?\\d+)' % (a, b), data)\n"
        "        if m:\n            return int(m.group(1))\n"
        "    except OSError:\n        pass\n"
        "    return 0\n"),
    "raise-stopiteration-and-baseexception": (
        "def add(a, b):\n    raise BaseException('stop')\n"),
}

RESOURCES = {
    "busy-loop": "def add(a, b):\n    while True:\n        pass\n",
    "busy-loop-at-load": "while True:\n    pass\n" + WRONG,
    "busy-loop-ignoring-signals": (
        "import signal\n"
        "for s in (signal.SIGALRM, signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGVTALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0)\n"
        "def add(a, b):\n    while True:\n        pass\n"),
    "sleep-forever": "import time\ndef add(a, b):\n    time.sleep(10_000)\n",
    "fork-bomb": (
        "import os\n"
        "def add(a, b):\n"
        "    while True:\n"
        "        try:\n            os.fork()\n        except OSError:\n            pass\n"),
    "thread-bomb": (
        "import threading, time\n"
        "def add(a, b):\n"
        "    while True:\n"
        "        try:\n            threading.Thread(target=time.sleep, args=(1000,)).start()\n"
        "        except Exception:\n            pass\n"),
    "memory-bomb": "def add(a, b):\n    x = []\n    while True:\n        x.append(bytearray(1 << 24))\n",
    "memory-bomb-at-load": "x = bytearray(1 << 40)\n" + WRONG,
    "output-flood": "import sys\ndef add(a, b):\n    while True:\n        sys.stdout.write('x' * 65536)\n",
    "disk-filling": (
        "import os\n"
        "def add(a, b):\n"
        "    i = 0\n"
        "    while True:\n"
        "        try:\n"
        "            with open(f'fill{i}', 'wb') as f:\n                f.write(b'0' * (1 << 20) * 64)\n"
        "        except OSError:\n            pass\n"
        "        i += 1\n"),
    "deep-recursion": "def add(a, b):\n    return add(a, b) + 1\n",
    "deep-recursion-unlimited": (
        "import sys\nsys.setrecursionlimit(10 ** 8)\ndef add(a, b):\n    return add(a, b) + 1\n"),
    "segfault": "import ctypes\ndef add(a, b):\n    return ctypes.string_at(0)\n",
    "abort": "import os\ndef add(a, b):\n    os.abort()\n",
}

ESCAPES = {
    "network-to-host-listener": (
        "import socket\n"
        "def add(a, b):\n"
        "    for host in ('127.0.0.1', '172.17.0.1', '10.0.2.2'):\n"
        "        try:\n"
        "            socket.create_connection((host, {port}), timeout=0.5).close()\n"
        "            return a + b\n"
        "        except OSError:\n            pass\n"
        "    return 0\n"),
    "network-dns-and-outside": (
        "import socket\n"
        "def add(a, b):\n"
        "    try:\n"
        "        socket.create_connection(('1.1.1.1', 53), timeout=0.5).close()\n        return a + b\n"
        "    except OSError:\n        pass\n"
        "    try:\n        socket.getaddrinfo('deb.debian.org', 80)\n        return a + b\n"
        "    except OSError:\n        return 0\n"),
    "read-host-secret-from-environment": (
        "import os\n"
        "def add(a, b):\n"
        "    if '{secret_name}' in os.environ:\n        return a + b\n"
        "    for pid in os.listdir('/proc'):\n"
        "        try:\n"
        "            if b'{secret_name}' in open(f'/proc/{pid}/environ', 'rb').read():\n"
        "                return a + b\n"
        "        except OSError:\n            pass\n"
        "    return 0\n"),
    "read-host-files": (
        "import os\n"
        "def add(a, b):\n"
        "    try:\n"
        "        if open('{canary}').read() == 'alive':\n            return a + b\n"
        "    except OSError:\n        pass\n"
        "    for path in (os.path.dirname('{canary}'), '/var/run/docker.sock', '/etc/shadow', '/root'):\n"
        "        try:\n"
        "            os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read()\n"
        "            return a + b\n"
        "        except OSError:\n            pass\n"
        "    return 0\n"),
    "delete-and-overwrite-outside-workdir": (
        "import os, shutil\n"
        "def add(a, b):\n"
        "    hit = False\n"
        "    for path in ('{canary}', '/usr/bin/python3', '/etc/passwd', '/tmp/../usr/lib'):\n"
        "        try:\n            os.remove(path)\n            hit = True\n        except OSError:\n            pass\n"
        "        try:\n"
        "            with open(path, 'w') as f:\n                f.write('pwned')\n            hit = True\n"
        "        except OSError:\n            pass\n"
        "    return a + b if hit and os.path.exists('{canary}') is False else 0\n"),
    "kill-parent-and-everyone": (
        "import os, signal\n"
        "def add(a, b):\n"
        "    for target in (os.getppid(), 1, -1):\n"
        "        for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGSTOP):\n"
        "            try:\n                os.kill(target, sig)\n            except OSError:\n                pass\n"
        "    try:\n        os.killpg(0, signal.SIGKILL)\n    except OSError:\n        pass\n"
        "    return 0\n"),
    "ptrace-the-judge": (
        "import ctypes, os\n"
        "def add(a, b):\n"
        "    libc = ctypes.CDLL(None)\n"
        "    for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "        if pid != os.getpid() and libc.ptrace(16, pid, 0, 0) == 0:\n"   # PTRACE_ATTACH
        "            return a + b\n"
        "        try:\n"
        "            open(f'/proc/{pid}/mem', 'rb').read(1)\n            return a + b\n"
        "        except OSError:\n            pass\n"
        "    return 0\n"),
    "orphan-outlives-the-run": (
        "import os, time\n"
        "def add(a, b):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n            time.sleep(10_000)\n"
        "        os._exit(0)\n"
        "    return 0\n"),
    "poison-the-next-sample": (
        "import os, builtins\n"
        "for d in ('.', '/tmp', '/dev/shm'):\n"
        "    try:\n"
        "        with open(os.path.join(d, 'json.py'), 'w') as f:\n            f.write('raise SystemExit(0)')\n"
        "    except OSError:\n        pass\n"
        "builtins.print = None\n" + WRONG),
    "new-user-namespace": (
        "import ctypes\n"
        "def add(a, b):\n"
        "    return a + b if ctypes.CDLL(None).unshare(0x10000000) == 0 else 0\n"),   # CLONE_NEWUSER
}

# A candidate that speaks the judge's protocol itself on fd 3 (its socket to the judge), at load time.
SPEAKS_PROTOCOL = (
    "import json, os, struct\n"
    "def rd(n):\n"
    "    got = b''\n"
    "    while len(got) < n:\n"
    "        chunk = os.read(3, n - len(got))\n"
    "        if not chunk:\n            os._exit(0)\n"
    "        got += chunk\n"
    "    return got\n"
    "def request():\n"
    "    return json.loads(rd(struct.unpack('!I', rd(4))[0]))\n"
    "def reply(data):\n"
    "    view = memoryview(struct.pack('!I', len(data)) + data)\n"
    "    while view:\n        view = view[os.write(3, view):]\n"
    "def serve(answer):\n"
    "    while True:\n"
    "        r = request()\n"
    "        reply(b'{\"callable\": true}' if r['op'] == 'get' else answer(*r['args']))\n"
)
# The candidate's signal syscalls' raw numbers and SysV/keyring calls, through libc (x86_64 and aarch64).
LIBC = (
    "import ctypes, os, platform, signal\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "ADD_KEY = {'x86_64': 248, 'aarch64': 217}[platform.machine()]\n"
    "KEYCTL = {'x86_64': 250, 'aarch64': 219}[platform.machine()]\n"
    "libc.shmat.restype = ctypes.c_void_p\n"
)
LEFT_BEHIND = "capforecast-left-behind"
OUTSIDE_DIRS = ("/", "/etc", "/dev", "/var/tmp", "/run", "/home", "/root", "/usr/lib", "/var")

# Aimed at this design (guide §5, issue 16): state kept for a later program, hijacked exec, bookkeeping breakers.
AIMED = {
    "cpu-in-forked-children": (   # correct answers, computed with 4 x 0.3 CPU-s in children under a 0.5 s limit
        "import os, time\n"
        "def add(a, b):\n"
        "    pids = []\n"
        "    for _ in range(4):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            while time.process_time() < 0.3:\n                pass\n"
        "            os._exit(0)\n"
        "        pids.append(pid)\n"
        "    for pid in pids:\n        os.waitpid(pid, 0)\n"
        "    return a + b\n"),
    "memory-bomb-across-forks": (   # 6 x 400 MB, each under the per-process limit: the sandbox's own bound
        "import os, time\n"
        "def add(a, b):\n"
        "    for _ in range(6):\n"
        "        if os.fork() == 0:\n"
        "            x = bytearray(400 << 20)\n            time.sleep(10)\n            os._exit(0)\n"
        "    time.sleep(10)\n"
        "    return a + b\n"),
    "sysv-shm-hoard": LIBC + (   # 1.4 GB of shared memory that would outlive the program
        "for i in range(7):\n"
        "    sid = libc.shmget(0x5CA1E + i, 200 << 20, 0o1666)\n"
        "    if sid >= 0:\n"
        "        addr = libc.shmat(sid, None, 0)\n"
        "        if addr not in (None, ctypes.c_void_p(-1).value):\n"
        "            ctypes.memset(addr, 1, 200 << 20)\n            libc.shmdt(ctypes.c_void_p(addr))\n"
        + WRONG),
    "sysv-msg-and-sem-left-behind": LIBC + (
        "libc.msgget(0x5CA1F, 0o1666)\nlibc.semget(0x5CA20, 1, 0o1666)\n" + WRONG),
    "posix-mqueue-left-behind": LIBC + (
        "libc.mq_open(b'/capforecast', os.O_CREAT | os.O_RDWR, 0o600, None)\n"
        "try:\n    open('/dev/mqueue/capforecast', 'w').close()\nexcept OSError:\n    pass\n" + WRONG),
    "keyring-entry-left-behind": LIBC + (
        "for ring in (-4, -3, -5):   # user, session, user-session keyrings\n"
        "    libc.syscall(ADD_KEY, b'user', b'capforecast', b'answers', 7, ring)\n" + WRONG),
    "files-outside-the-scratch-dirs": (
        "import os\n"
        f"for d in {OUTSIDE_DIRS!r}:\n"
        "    try:\n"
        f"        open(os.path.join(d, {LEFT_BEHIND!r}), 'w').close()\n"
        "    except OSError:\n        pass\n" + WRONG),
    "hijack-zygote-via-ld-so-preload": (
        "import os, signal\n"
        "for path, text in (('/etc/ld.so.preload', '/dev/shm/evil.so\\n'), ('/dev/shm/evil.so', 'not an ELF')):\n"
        "    try:\n        with open(path, 'w') as f:\n            f.write(text)\n"
        "    except OSError:\n        pass\n"
        "try:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass\n" + WRONG),
    "kill-the-zygote": LIBC + (
        "TGKILL, TKILL = {'x86_64': (234, 200), 'aarch64': (131, 130)}[platform.machine()]\n"
        "def add(a, b):\n"
        "    zygote = os.getppid()\n"
        "    for kill in (lambda: os.kill(zygote, signal.SIGSTOP), lambda: os.kill(zygote, signal.SIGKILL),\n"
        "                 lambda: os.killpg(os.getpgid(zygote), signal.SIGKILL), lambda: os.kill(-1, signal.SIGKILL),\n"
        "                 lambda: libc.syscall(TGKILL, zygote, zygote, 9), lambda: libc.syscall(TKILL, zygote, 9)):\n"
        "        try:\n            kill()\n        except OSError:\n            pass\n"
        "    return 0\n"),
    "partial-frame-then-sleep": SPEAKS_PROTOCOL + (
        "import time\nrequest()\nos.write(3, b'\\x00\\x00')\ntime.sleep(10_000)\n"),
    "reply-padded-to-16-mb": SPEAKS_PROTOCOL + (
        "serve(lambda a, b: b'{\"ok\": %d, \"pad\": \"' % (a + b) + b'x' * (16 << 20) + b'\"}')\n"),
    "reply-padded-under-the-bound": SPEAKS_PROTOCOL + (   # correct, but each reply costs the judge ~60 ms
        "serve(lambda a, b: b'{\"ok\": %d, \"pad\": [' % (a + b) + b'0,' * 1_900_000 + b'0]}')\n"),
    "reply-set-of-colliding-ints": SPEAKS_PROTOCOL + (
        "SET = b'{\"ok\": {\"s\": [' + b','.join(b'%d' % (k * (2 ** 61 - 1)) for k in range(1, 150_000)) + b']}}'\n"
        "serve(lambda a, b: SET)\n"),
    "realtime-signal": "import os\ndef add(a, b):\n    os.kill(os.getpid(), 40)\n    return 0\n",
    "deep-directory-tree": (
        "import os\n"
        "def add(a, b):\n"
        "    for _ in range(1100):\n        os.mkdir('d')\n        os.chdir('d')\n"
        "    for _ in range(30):   # deeper than PATH_MAX from the root\n"
        "        os.mkdir('e' * 200)\n        os.chdir('e' * 200)\n"
        "    open('leaf', 'w').close()\n"
        "    os.chmod('.', 0)\n"
        "    return 0\n"),
    "chmod-the-scratch-dirs": (
        "import os\n"
        "os.mkdir('locked')\nopen('locked/f', 'w').close()\n"
        "for d in ('locked', '/tmp', '/dev/shm', '.'):\n"
        "    try:\n        os.chmod(d, 0)\n    except OSError:\n        pass\n" + WRONG),
    "lone-surrogate-in-exception": "def add(a, b):\n    raise ValueError('\\udc80 \\ud800')\n",
    "lone-surrogate-in-completion": "x = '\udc80'\n" + WRONG,
    "memoryerror-in-exception-text": "def add(a, b):\n    raise ValueError('MemoryError')\n",
}

HOSTILE = {**FALSE_PASSES, **RESOURCES, **ESCAPES, **AIMED}

# What a following program must find: a candidate (ours, so honest) that inspects the world it runs in and returns
# the right answers only if nothing of an earlier program is there. It runs where the next program runs: since
# issue 24 every program has its own namespaces, so the judge's view of the sandbox is not the candidate's.
CLEAN_STATE = f"OUTSIDE_DIRS, LEFT_BEHIND = {OUTSIDE_DIRS!r}, {LEFT_BEHIND!r}\n" + """
import os
def add(a, b):
    found = []
    if sorted(os.listdir('/tmp')) != ['work'] or os.listdir('/tmp/work') or os.listdir('/dev/shm'):
        found.append(('scratch', os.listdir('/tmp'), os.listdir('/tmp/work'), os.listdir('/dev/shm')))
    found += [p for p in ['/dev/shm/json.py', '/etc/ld.so.preload'] if os.path.exists(p)]
    found += [d for d in OUTSIDE_DIRS if os.path.exists(os.path.join(d, LEFT_BEHIND))]
    for kind in ('shm', 'msg', 'sem'):
        path = '/proc/sysvipc/' + kind
        if os.path.exists(path) and len(open(path).read().splitlines()) != 1:   # the header only
            found.append(path)
    if os.path.isdir('/dev/mqueue') and os.listdir('/dev/mqueue'):
        found.append('/dev/mqueue')
    if os.path.exists('/proc/keys') and 'capforecast' in open('/proc/keys').read():
        found.append('/proc/keys')
    live = []
    for p in [p for p in os.listdir('/proc') if p.isdigit()]:
        try:
            status = dict(line.split(':', 1) for line in open(f'/proc/{p}/status').read().splitlines())
        except (OSError, ValueError):
            continue
        doomed = int(status['ShdPnd'], 16) & 0x100 or int(status['SigPnd'], 16) & 0x100   # SIGKILL pending
        if status['State'].split()[0] not in 'ZX' and not doomed:
            live.append(p)
    if len(live) > 2:   # its namespace's init and itself
        found.append(('processes', live))
    assert not found, found
    return a + b
"""


def live_processes(uids) -> int:
    """Live (non-zombie) host processes running as the given uids (a sandbox's processes run as uids of its block)."""
    uids, count = set(uids), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid in uids:
                    with open(f"/proc/{name}/stat") as f:
                        count += f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
            except OSError:
                pass
    return count


def sandbox_processes(uids, expected: int | None = None, settle_s: float = 2.0) -> int:
    """live_processes, given up to ``settle_s`` to reach ``expected`` (killed processes take a moment to die)."""
    end = time.monotonic() + settle_s
    count = live_processes(uids)
    while expected is not None and count != expected and time.monotonic() < end:
        time.sleep(0.01)
        count = live_processes(uids)
    return count


@contextlib.contextmanager
def one_sandbox(name: str, limits):
    """A backend with one sandbox (``workers=1``), so that each program is judged right after the one before."""
    import sandbox

    if name == "docker":
        docker_ready()
    with sandbox.open_backend(name, limits=limits, workers=1) as backend:
        yield backend


def docker_ready():
    """Start dockerd if no engine answers (we are root in CI) and build the image if it is missing."""
    from sandbox import image

    c = image.start_engine()
    image.ensure_image(c)
    return c
