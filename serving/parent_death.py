"""Die with the process that started this server, when it asks (the pipeline's canary does).

The canary sets EMBEDPIPE_DIE_WITH_PARENT=<its pid> in the server's environment; the server then
asks Linux for SIGKILL when that parent dies (prctl PR_SET_PDEATHSIG), so a killed pipeline
never leaves a server running an unvetted model. Done here, in the server, not in a
``preexec_fn`` of the parent: a preexec_fn makes Python fork() a parent that runs gRPC threads,
and gRPC's fork handlers then crashed the child 1 time in ~20 before exec (exit -6, "epoll_wait
error: Bad file descriptor", seen in a full test run on 2026-12-01). Without preexec_fn, Python
starts the child with vfork, which runs no fork handlers.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_ENV = "EMBEDPIPE_DIE_WITH_PARENT"
PR_SET_PDEATHSIG = 1  # the constant's value in <sys/prctl.h>


def die_with_parent_if_asked() -> None:
    """With ``EMBEDPIPE_DIE_WITH_PARENT=<pid>``: SIGKILL when the parent dies; exit at once if it
    already has (it died before the request took effect). Linux only; elsewhere nothing happens."""
    wanted = os.environ.get(PARENT_ENV)
    if not wanted or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(wanted):
        os._exit(1)  # the parent is already gone: we were re-parented before prctl took effect
