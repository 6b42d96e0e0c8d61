#!/usr/bin/env python3
"""A supervisor as systemd is with Type=notify, Restart=on-failure and
FileDescriptorStoreMax=: it runs COMMAND with NOTIFY_SOCKET, keeps the
descriptors COMMAND stores (FDSTORE=1, FDNAME=, FDPOLL=; FDSTOREREMOVE=1),
and when COMMAND dies by a signal starts it again with them (LISTEN_FDS,
LISTEN_FDNAMES, LISTEN_PID), after HOLD (a file) is gone if it exists.

Usage: fdstore.py EVENTS LOG HOLD -- COMMAND [ARG...]

EVENTS gets a line per event: "started PID", "ready PID", "stored NAME",
"removed NAME", "killed PID SIGNAL", "exited PID STATUS". It stops when
COMMAND exits by itself, or forwards SIGTERM to it and stops with it; its
descriptors closed, a mount no daemon serves then ends.
"""
import fcntl
import os
import select
import signal
import socket
import sys
import time

events_path, log_path, hold_path, sep = sys.argv[1:5]
command = sys.argv[5:]
if sep != "--" or not command:
    sys.exit(__doc__)

sock_path = events_path + ".sock"
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sock_path)
store = {}  # FDNAME -> descriptor, in the order stored
stopping = False


def event(line):
    with open(events_path, "a") as f:
        f.write(line + "\n")


def start():
    names = list(store)
    pid = os.fork()
    if pid == 0:
        try:
            log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(log, 2)
            # Passed as systemd does: at 3, 4, ... in store order.
            high = [fcntl.fcntl(store[n], fcntl.F_DUPFD, 200) for n in names]
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i)
            os.closerange(3 + len(high), 65536)
            env = dict(os.environ, NOTIFY_SOCKET=sock_path)
            if names:
                env.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(names)),
                           LISTEN_FDNAMES=":".join(names))
            os.execve(command[0], command, env)
        finally:
            os._exit(127)
    event("started %d" % pid)
    return pid


def on_term(signum, frame):
    global stopping
    stopping = True
    try:
        os.kill(current, signal.SIGTERM)
    except ProcessLookupError:
        pass


def receive():
    msg, fds, _, _ = socket.recv_fds(sock, 4096, 16)
    fields = dict(line.split("=", 1) for line in msg.decode().splitlines() if "=" in line)
    name = fields.get("FDNAME", "stored")
    if fields.get("FDSTORE") == "1":
        for fd in fds:
            if name in store:
                os.close(store[name])
            store[name] = fd
        event("stored " + name)
        fds = []
    if fields.get("FDSTOREREMOVE") == "1" and name in store:
        os.close(store.pop(name))
        event("removed " + name)
    for fd in fds:
        os.close(fd)
    if fields.get("READY") == "1":
        event("ready %s" % fields.get("MAINPID", current))


signal.signal(signal.SIGTERM, on_term)
current = start()
while True:
    try:
        if select.select([sock], [], [], 0.1)[0]:
            receive()
    except InterruptedError:
        pass
    pid, status = os.waitpid(current, os.WNOHANG)
    if pid == 0:
        continue
    while select.select([sock], [], [], 0)[0]:
        receive()  # what it said before it went
    if os.WIFSIGNALED(status) and not stopping:
        event("killed %d %d" % (pid, os.WTERMSIG(status)))
        while os.path.exists(hold_path) and not stopping:
            time.sleep(0.1)
        if not stopping:
            current = start()
            continue
    else:
        event("exited %d %d" % (pid, os.waitstatus_to_exitcode(status)))
    break
for fd in store.values():
    os.close(fd)
os.unlink(sock_path)
