"""The docker container's PID 1 (stdlib only): puts the fork server in a user namespace of its own, then waits.

It starts as the container's root holding only CAP_SETUID and CAP_SETGID, connects the host's channel socket (so
the host sees the container's PID 1 as its peer), and forks a child that unshares a user namespace and, owned by
it, new mount, network, IPC, UTS and PID namespaces (the zygote must be able to return to them after each
program, which it may only do in namespaces its own user namespace owns). PID 1 then writes the child's uid and
gid maps (inner 0..count-1 -> host base..base+count-1, a block of host uids that own nothing; writing a map of
more than one id is what the two capabilities are for), drops to the block's first uid with no capability at
all, and only waits. The child becomes inner root and forks the server, PID 1 of the new PID namespace (as in
the bwrap backend, whose namespaces bubblewrap makes in the user namespace the host maps: sandbox.bwrap), then
waits for it. Nothing of the sandbox ever runs as host root afterwards.
"""
import os
import socket

from sandbox.world import CLONE_NEWUSER, PROGRAM_NAMESPACES, unshare  # inline


def write_maps(pid, base, count):
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(f"0 {base} {count}\n")


def launch(base, count, channel):
    """Returns (in the server, now root of its own user namespace) the host channel's fd; never returns in PID 1."""
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.connect(channel)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        unshare(CLONE_NEWUSER | sum(flag for _, flag in PROGRAM_NAMESPACES))
        os.write(ready_w, b"u")
        if os.read(go_r, 1) != b"g":
            os._exit(91)
        os.close(ready_w)
        os.close(go_r)
        os.setresgid(0, 0, 0)
        os.setgroups([])
        os.setresuid(0, 0, 0)
        server = os.fork()
        if server == 0:
            return host.detach()
        host.close()
        wait_for(server)
    host.close()
    os.close(ready_w)
    os.close(go_r)
    code = 92
    try:
        if os.read(ready_r, 1) == b"u":
            write_maps(pid, base, count)
            os.write(go_w, b"g")
            code = 0
    finally:
        os.setgroups([])
        os.setresgid(base, base, base)
        os.setresuid(base, base, base)
    if code:
        os._exit(code)
    wait_for(pid)


def wait_for(pid):
    """Wait for ``pid`` and exit as it did."""
    try:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    except ChildProcessError:
        os._exit(93)
