"""A seccomp filter for the candidate process (stdlib only): no state that outlives it, no signals to its keepers.

Denied with EPERM: creating or opening SysV shared memory, message queues and semaphores, POSIX message
queues and keys (user/session keyrings). All of those live as long as the sandbox's IPC namespace or user,
not as long as the program, so a candidate could leave answers there for the next one (the judge's call
sequence tells a failing candidate which of its answers held). Also denied: signals aimed at the zygote,
the fork server or their process group, ``kill(-1)`` and ``pidfd_send_signal``, so no candidate can kill
or stop the process that forks the next one. The filter is inherited by every process the candidate forks.
"""
import ctypes
import os
import platform
import struct

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW, RET_EPERM = 0x7FFF0000, 0x00050000 | 1
LD_ABS, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
NR, ARCH, ARG0 = 0, 4, 16   # offsets in struct seccomp_data (little-endian: ARG0 is the low half of args[0])
X32_BIT = 0x40000000
# arch -> (AUDIT_ARCH, syscalls denied outright, signal syscalls whose first argument names the target)
SYSCALLS = {
    # shmget semget msgget mq_open add_key request_key keyctl pidfd_send_signal
    "x86_64": (0xC000003E, (29, 64, 68, 240, 248, 249, 250, 424),
               (62, 200, 234, 129, 297)),        # kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo
    "aarch64": (0xC00000B7, (194, 190, 186, 180, 217, 218, 219, 424),
                (129, 130, 131, 138, 240)),
}


def insn(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def program(arch, protected):
    """The BPF program: wrong arch or x32 -> EPERM; denied calls -> EPERM; signals to ``protected`` -> EPERM."""
    audit, denied, signals = SYSCALLS[arch]
    code = [insn(LD_ABS, ARCH), insn(JEQ, audit, 1, 0), insn(RET, RET_EPERM), insn(LD_ABS, NR)]
    if arch == "x86_64":
        code += [insn(JGE, X32_BIT, 0, 1), insn(RET, RET_EPERM)]
    for nr in denied:
        code += [insn(JEQ, nr, 0, 1), insn(RET, RET_EPERM)]
    for i, nr in enumerate(signals):
        code.append(insn(JEQ, nr, len(signals) - i, 0))   # jump to the target check below
    code.append(insn(RET, RET_ALLOW))
    code.append(insn(LD_ABS, ARG0))
    for target in sorted(protected):
        code += [insn(JEQ, target, 0, 1), insn(RET, RET_EPERM)]
    code.append(insn(RET, RET_ALLOW))
    return b"".join(code)


class Filter:
    """The compiled filter, built and installed once in the zygote (its pid, group and parent are the keepers);
    every candidate it forks inherits it. The zygote itself needs none of what it denies."""

    def __init__(self, keepers):
        arch = platform.machine()
        self.error = None if arch in SYSCALLS else f"no seccomp filter for {arch}: refusing to run a candidate"
        protected = {-1} | {p for k in keepers if k > 0 for p in (k, -k)}
        self.code = program(arch, {p & 0xFFFFFFFF for p in protected}) if self.error is None else b""

        class Prog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

        self.prog = Prog(len(self.code) // 8, self.code)
        self.libc = ctypes.CDLL(None, use_errno=True)

    def apply(self):
        """Filter this process and its future children, or raise (a candidate never runs unfiltered)."""
        if self.error:
            raise OSError(self.error)
        if self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
                self.libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self.prog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot install the candidate's seccomp filter")


def zygote_filter():
    """In the zygote: a filter that keeps its candidates' signals off it, its group, the server and PID 1."""
    return Filter({os.getpid(), os.getpgrp(), os.getppid(), 1})
