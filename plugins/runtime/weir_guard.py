"""Guards that keep a plugin from ending or copying the server process it runs in.

Plugins run in Weir's own interpreter, so a call that ends the process (os._exit, os.abort, a
signal to the server itself, signal.alarm) or copies it (os.fork: a child holding the server's
locks, sockets and half-written state) would take every database down with it. Those calls are
replaced, once, by ones that raise ProtectedError (a PermissionError, so code that handles
OSError handles it too) with a reason; the trigger's error behaviour then applies. Children
started with subprocess exec at once, and every descriptor the server opens is close-on-exec,
so they keep none of its sockets or files. sys.setrecursionlimit is capped so that recursion in
C code raises RecursionError before it overflows an executor thread's stack. A crash in C code
cannot be contained in-process; faulthandler then writes every Python thread's traceback to the
server's log, so the log names the plugin that crashed it.

This is containment of the common mistakes, not a sandbox: ctypes or a C extension can still do
anything the server process can (docs/RELIABILITY.md).
"""

import faulthandler
import os
import posix
import signal
import sys

# An executor thread's stack (64 MiB) holds C recursion this deep with room to spare.
MAX_RECURSION_LIMIT = 20000


class ProtectedError(PermissionError):
    pass


def _refuse(what, why):
    def refused(*args, **kwargs):
        raise ProtectedError(f"{what} is not allowed in a Weir plugin: {why}")

    refused.__name__ = what.rsplit(".", 1)[-1]
    refused.__qualname__ = refused.__name__
    return refused


_ENDS = "it would stop the whole server; raise an exception or return instead"
_COPIES = (
    "a copy of the server's process would hold its locks and sockets; use subprocess, or "
    "multiprocessing with the 'spawn' start method"
)


def _targets_server(pid):
    # 0 is our process group, -1 every process we may signal, -pgid a group.
    return pid in (0, -1, os.getpid()) or (pid < 0 and -pid == os.getpgrp())


def _guard_kill(kill):
    def guarded_kill(pid, sig):
        if sig != 0 and _targets_server(pid):
            raise ProtectedError(f"os.kill({pid}, {sig}) would signal the Weir server itself: {_ENDS}")
        return kill(pid, sig)

    guarded_kill.__name__ = "kill"
    return guarded_kill


def _guard_killpg(killpg):
    def guarded_killpg(pgid, sig):
        if sig != 0 and pgid in (0, os.getpgrp()):
            raise ProtectedError(f"os.killpg({pgid}, {sig}) would signal the Weir server's process group: {_ENDS}")
        return killpg(pgid, sig)

    guarded_killpg.__name__ = "killpg"
    return guarded_killpg


def _guard_setrecursionlimit(setrecursionlimit):
    def capped(limit):
        return setrecursionlimit(min(int(limit), MAX_RECURSION_LIMIT))

    capped.__name__ = "setrecursionlimit"
    capped.__doc__ = f"Sets the recursion limit, at most {MAX_RECURSION_LIMIT} in a Weir plugin."
    return capped


def install():
    if getattr(sys, "_weir_guarded", False):
        return
    for module in (os, posix):
        for name in ("_exit", "abort"):
            if hasattr(module, name):
                setattr(module, name, _refuse(f"os.{name}", _ENDS))
        for name in ("fork", "forkpty"):
            if hasattr(module, name):
                setattr(module, name, _refuse(f"os.{name}", _COPIES))
        for name in ("chdir", "fchdir", "chroot"):
            if hasattr(module, name):
                setattr(module, name, _refuse(f"os.{name}", "it changes the directory of the whole server, whose other threads rely on it"))
        module.kill = _guard_kill(module.kill)
        module.killpg = _guard_killpg(module.killpg)
    for name in ("raise_signal", "alarm", "setitimer", "pthread_kill"):
        if hasattr(signal, name):
            setattr(signal, name, _refuse(f"signal.{name}", "a signal to the server's own process would stop it"))
    sys.setrecursionlimit = _guard_setrecursionlimit(sys.setrecursionlimit)
    faulthandler.enable(file=sys.__stderr__, all_threads=True)
    sys._weir_guarded = True
