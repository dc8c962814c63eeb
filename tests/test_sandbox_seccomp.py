"""The candidate's seccomp filter on both architectures it knows, run in a small classic-BPF interpreter.

The kernel runs the filter only for this machine's architecture; an interpreter lets the aarch64 program be
checked here too: every denied call, every namespace flag of clone, clone3, socket families and buffer options,
calls of another ABI, and ordinary calls that must go through. The syscall numbers are checked against the
kernel headers installed here, where they exist.
"""
import re
import struct
from pathlib import Path

import pytest

from sandbox import seccomp

ARCHES = ["x86_64", "aarch64"]
ALLOW, NOTIFY = seccomp.RET_ALLOW, seccomp.RET_USER_NOTIF
EPERM, ENOSYS, EAFNOSUPPORT = (seccomp.RET_ERRNO | e for e in (1, 38, 97))
ORDINARY = {"x86_64": {"read": 0, "write": 1, "mmap": 9, "openat": 257, "fork": 57, "kill": 62},
            "aarch64": {"read": 63, "write": 64, "mmap": 222, "openat": 56, "kill": 129}}
HEADERS = {"x86_64": ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", r"#define __NR_(\w+)\s+(\d+)"),
           "aarch64": ("/usr/include/asm-generic/unistd.h", r"#define __NR(?:3264)?_(\w+)\s+(\d+)")}
CLONE_NEW = {"NEWNS": 0x20000, "NEWCGROUP": 0x02000000, "NEWUTS": 0x04000000, "NEWIPC": 0x08000000,
             "NEWUSER": 0x10000000, "NEWPID": 0x20000000, "NEWNET": 0x40000000}
THREAD_FLAGS = 0x3D0F00   # what pthread_create passes to clone: VM, FS, FILES, SIGHAND, THREAD, SYSVSEM, SETTLS, ...


def run(code: bytes, arch: str, nr: int, args=(0, 0, 0, 0, 0, 0), audit=None) -> int:
    """The filter's return value for one syscall (struct seccomp_data: nr, arch, ip, args[6])."""
    args = (tuple(args) + (0,) * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, audit if audit is not None else seccomp.AUDIT_ARCH[arch], 0,
                       *[a & 0xFFFFFFFFFFFFFFFF for a in args])
    insns = [struct.unpack("HBBI", code[i:i + 8]) for i in range(0, len(code), 8)]
    pc, acc = 0, 0
    while True:
        op, jt, jf, k = insns[pc]
        if op == seccomp.LD_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif op in (seccomp.JEQ, seccomp.JGE, seccomp.JSET):
            taken = {seccomp.JEQ: acc == k, seccomp.JGE: acc >= k, seccomp.JSET: bool(acc & k)}[op]
            pc += jt if taken else jf
        elif op == seccomp.RET:
            return k
        else:
            raise AssertionError(f"unexpected BPF opcode {op:#x}")
        pc += 1


@pytest.fixture(params=ARCHES)
def arch(request):
    return request.param


def nr(arch, name):
    return seccomp.NUMBERS[arch][name]


@pytest.mark.parametrize("name", seccomp.DENIED)
def test_every_denied_call_is_refused(arch, name):
    assert run(seccomp.program(arch), arch, nr(arch, name)) == EPERM


@pytest.mark.parametrize("flag", list(CLONE_NEW))
def test_clone_with_a_namespace_flag_is_refused(arch, flag):
    assert run(seccomp.program(arch), arch, nr(arch, "clone"), (CLONE_NEW[flag] | 17,)) == EPERM


def test_clone_for_a_process_or_a_thread_goes_through_and_clone3_falls_back(arch):
    code = seccomp.program(arch)
    assert run(code, arch, nr(arch, "clone"), (17,)) == ALLOW
    assert run(code, arch, nr(arch, "clone"), (THREAD_FLAGS,)) == ALLOW
    assert run(code, arch, nr(arch, "clone3"), (0, 88)) == ENOSYS


@pytest.mark.parametrize("notify", [False, True])
def test_sockets_of_unix_and_ip_families_only_and_reported_when_asked(arch, notify):
    code = seccomp.program(arch, notify)
    for call in ("socket", "socketpair"):
        for family in seccomp.SOCKET_FAMILIES:
            assert run(code, arch, nr(arch, call), (family, 1, 0)) == (NOTIFY if notify else ALLOW)
        for family in (16, 17, 40, 38, 3):   # netlink, packet, vsock, alg, ax25
            assert run(code, arch, nr(arch, call), (family, 1, 0)) == EAFNOSUPPORT


def test_socket_buffers_cannot_be_grown_but_other_options_can(arch):
    code = seccomp.program(arch)
    for option in seccomp.BUFFER_OPTIONS:
        assert run(code, arch, nr(arch, "setsockopt"), (3, seccomp.SOL_SOCKET, option)) == EPERM
    assert run(code, arch, nr(arch, "setsockopt"), (3, seccomp.SOL_SOCKET, 2)) == ALLOW   # SO_REUSEADDR
    assert run(code, arch, nr(arch, "setsockopt"), (3, 6, 7)) == ALLOW   # a TCP option numbered like SO_SNDBUF


def test_ordinary_calls_go_through(arch):
    code = seccomp.program(arch)
    assert all(run(code, arch, number) == ALLOW for number in ORDINARY[arch].values())


def test_calls_of_another_abi_are_refused(arch):
    code = seccomp.program(arch)
    for audit in (0x40000003, 0x40000028):   # i386, arm
        assert run(code, arch, 0, audit=audit) == EPERM
    if arch == "x86_64":
        assert run(code, arch, seccomp.X32_BIT | 0) == EPERM


def test_syscall_numbers_match_the_installed_kernel_headers(arch):
    path, pattern = HEADERS[arch]
    if not Path(path).exists():
        pytest.skip(f"{path} is not installed")
    known = {name: int(number) for name, number in re.findall(pattern, Path(path).read_text())}
    checked = {name: number for name, number in seccomp.NUMBERS[arch].items() if name in known}
    assert checked and all(known[name] == number for name, number in checked.items()), \
        {name: (number, known[name]) for name, number in checked.items() if known[name] != number}
    assert set(seccomp.NUMBERS[arch]) - set(checked) <= {"cachestat"}   # newer than some headers (6.5)
