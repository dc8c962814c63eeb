"""The candidate's seccomp filter (stdlib only): what no test program needs, denied by number on x86_64 and aarch64.

The boundary itself is not this filter: a candidate runs under a uid of its own in namespaces of its own, so the
kernel's ordinary rules keep it off the trusted processes (sandbox.world). The filter removes kernel interfaces
that a test program never needs and that reach past that boundary or keep state: io_uring, userfaultfd, bpf,
perf_event_open, keys (keyctl, add_key, request_key), ptrace and process_vm_*, every call that makes, joins or
mounts a namespace (unshare, setns, clone with a CLONE_NEW* flag; clone3, whose flags a filter cannot read, is
ENOSYS so that the C library falls back to clone), SysV IPC and POSIX message queues, the kernel log, sysinfo
(host-wide memory and load), page-cache probes and eviction (fadvise, cachestat, mincore, preadv2/pwritev2 with
RWF_NOWAIT), and socket buffers beyond the default (SO_SNDBUF/SO_RCVBUF and their FORCE forms: a unix socket's
buffer is not charged to any memory cgroup). Sockets are unix, IPv4 and IPv6 only (vsock would reach the host of
a VM). Calls of another architecture (i386, x32, arm32) are refused. The filter is inherited by every process
the candidate starts and cannot be removed.

With ``notify``, each socket()/socketpair() that the filter lets through first waits for the fork server
(SECCOMP_RET_USER_NOTIF; the filter's listener fd goes to the server): a program that never made a socket left
nothing in its network namespace, so the next program may start in the same one (sandbox.worlds).
"""
import ctypes
import platform
import struct

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER = 1, 8
RET_ALLOW, RET_ERRNO, RET_USER_NOTIF = 0x7FFF0000, 0x00050000, 0x7FC00000
EPERM, ENOSYS, EAFNOSUPPORT = 1, 38, 97
LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
NR, ARCH = 0, 4                 # offsets in struct seccomp_data
X32_BIT = 0x40000000
CLONE_NEW = 0x7E020000          # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (clone()'s flags)
SOCKET_FAMILIES = (1, 2, 10)    # AF_UNIX, AF_INET, AF_INET6
SOL_SOCKET, BUFFER_OPTIONS = 1, (7, 8, 32, 33)   # SO_SNDBUF, SO_RCVBUF, SO_SNDBUFFORCE, SO_RCVBUFFORCE

# Denied outright (EPERM), by name; the numbers of each architecture follow.
DENIED = ("io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "bpf", "perf_event_open", "keyctl",
          "add_key", "request_key", "ptrace", "process_vm_readv", "process_vm_writev", "unshare", "setns", "mount",
          "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
          "mount_setattr", "shmget", "semget", "msgget", "mq_open", "syslog", "sysinfo", "fadvise64", "cachestat",
          "mincore", "preadv2", "pwritev2", "kcmp", "pidfd_getfd", "name_to_handle_at", "open_by_handle_at",
          "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
          "swapoff", "acct", "quotactl", "lookup_dcookie")
# name: (x86_64, aarch64); aarch64 numbers are the generic table's (asm-generic/unistd.h)
SYSCALL_NUMBERS = {
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "userfaultfd": (323, 282), "bpf": (321, 280), "perf_event_open": (298, 241), "keyctl": (250, 219),
    "add_key": (248, 217), "request_key": (249, 218), "ptrace": (101, 117), "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271), "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40),
    "umount2": (166, 39), "pivot_root": (155, 41), "open_tree": (428, 428), "move_mount": (429, 429),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442), "shmget": (29, 194), "semget": (64, 190), "msgget": (68, 186),
    "mq_open": (240, 180), "syslog": (103, 116), "sysinfo": (99, 179), "fadvise64": (221, 223),
    "cachestat": (451, 451), "mincore": (27, 232), "preadv2": (327, 286), "pwritev2": (328, 287),
    "kcmp": (312, 272), "pidfd_getfd": (438, 438), "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265), "kexec_load": (246, 104), "kexec_file_load": (320, 294),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106), "reboot": (169, 142),
    "swapon": (167, 224), "swapoff": (168, 225), "acct": (163, 89), "quotactl": (179, 60),
    "lookup_dcookie": (212, 18), "clone": (56, 220), "clone3": (435, 435), "socket": (41, 198),
    "socketpair": (53, 199), "setsockopt": (54, 208), "seccomp": (317, 277),
}
NUMBERS = {arch: {name: numbers[i] for name, numbers in SYSCALL_NUMBERS.items()}
           for i, arch in enumerate(("x86_64", "aarch64"))}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


def arg_low(i):
    """Offset of the low 32 bits of syscall argument i in struct seccomp_data (both architectures are little-endian)."""
    return 16 + 8 * i


class Program:
    """A classic BPF program built with symbolic jump targets (resolved to offsets by ``code``)."""

    def __init__(self):
        self.insns, self.labels = [], {}

    def op(self, code, k=0, jt=None, jf=None):
        self.insns.append((code, k, jt, jf))

    def label(self, name):
        self.labels[name] = len(self.insns)

    def code(self):
        out = []
        for i, (code, k, jt, jf) in enumerate(self.insns):
            offsets = [0 if target is None else self.labels[target] - i - 1 for target in (jt, jf)]
            if any(not 0 <= o <= 255 for o in offsets):
                raise ValueError("seccomp program: jump out of range")
            out.append(struct.pack("HBBI", code, offsets[0], offsets[1], k & 0xFFFFFFFF))
        return b"".join(out)


def program(arch, notify=False):
    """The filter for ``arch`` (sockets of an allowed family wait for the listener when ``notify``): the BPF bytes."""
    nr = NUMBERS[arch]
    p = Program()
    p.op(LD_ABS, ARCH)
    p.op(JEQ, AUDIT_ARCH[arch], None, "eperm")
    p.op(LD_ABS, NR)
    if arch == "x86_64":
        p.op(JGE, X32_BIT, "eperm", None)
    for name in DENIED:
        p.op(JEQ, nr[name], "eperm", None)
    p.op(JEQ, nr["clone3"], "enosys", None)
    p.op(JEQ, nr["clone"], "clone", None)
    p.op(JEQ, nr["socket"], "family", None)
    p.op(JEQ, nr["socketpair"], "family", None)
    p.op(JEQ, nr["setsockopt"], "sockopt", None)
    p.op(RET, RET_ALLOW)
    p.label("clone")
    p.op(LD_ABS, arg_low(0))
    p.op(JSET, CLONE_NEW, "eperm", "allow")
    p.label("family")
    p.op(LD_ABS, arg_low(0))
    for family in SOCKET_FAMILIES:
        p.op(JEQ, family, "socket", None)
    p.op(RET, RET_ERRNO | EAFNOSUPPORT)
    p.label("socket")
    p.op(RET, RET_USER_NOTIF if notify else RET_ALLOW)
    p.label("sockopt")
    p.op(LD_ABS, arg_low(1))
    p.op(JEQ, SOL_SOCKET, None, "allow")
    p.op(LD_ABS, arg_low(2))
    for option in BUFFER_OPTIONS:
        p.op(JEQ, option, "eperm", None)
    p.label("allow")
    p.op(RET, RET_ALLOW)
    p.label("eperm")
    p.op(RET, RET_ERRNO | EPERM)
    p.label("enosys")
    p.op(RET, RET_ERRNO | ENOSYS)
    return p.code()


class Filter:
    """The compiled filter for this machine, built once (in the zygote) and installed in each candidate."""

    def __init__(self, arch=None, notify=False):
        arch = arch or platform.machine()
        self.error = None if arch in NUMBERS else f"no seccomp filter for {arch}: refusing to run a candidate"
        self.code = program(arch, notify) if self.error is None else b""
        self.notify = notify and NUMBERS.get(arch, {}).get("seccomp")

        class Prog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

        self.prog = Prog(len(self.code) // 8, self.code)
        self.libc = ctypes.CDLL(None, use_errno=True)

    def apply(self):
        """Filter this process and its future children, or raise (a candidate never runs unfiltered); the
        listener's fd with ``notify``, else None."""
        if self.error:
            raise OSError(self.error)
        if self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot set no_new_privs")
        if self.notify:
            fd = self.libc.syscall(self.notify, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                                   ctypes.byref(self.prog))
            if fd < 0:
                raise OSError(ctypes.get_errno(), "cannot install the candidate's seccomp filter")
            return fd
        if self.libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self.prog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot install the candidate's seccomp filter")
        return None
