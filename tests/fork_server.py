"""Real entry-point processes without paying the framework import each time (the suite's ~30 of them).

``python -m experiments.run`` spends about 8 s of a 2-core CPU importing torch, Lightning and Hydra before it
does anything. The server imports ``experiments.run`` once, then forks a child per request: a child is a
fresh process (its own pid, environment, working directory, files and exit status, and it can be killed)
that starts with the imports done and runs the entry point as ``python -m`` would (``runpy``, ``__main__``).
Children it starts itself (DDP ranks) are ordinary ``sys.executable`` processes.

The server is single-threaded (forking a multi-threaded process is unsafe): one loop accepts requests and
reaps children. Protocol over a Unix socket, one JSON line each way per message: the client sends
{module, args, cwd, env, stdout, stderr}; the server answers {"pid": ...} at once and {"returncode": ...}
(negative signal number for a killed child, as subprocess reports it) when the child ends.

``spawn`` falls back to a plain subprocess when the server cannot be used (no fork, no Unix sockets).
"""

from __future__ import annotations

import json
import os
import runpy
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
STARTUP_TIMEOUT_S = 120


# ---- the server ---------------------------------------------------------------------------------------
def serve(socket_path: str, preload: str) -> None:
    parent = os.getppid()  # the test session: when it is gone, so is the server
    __import__(preload)
    import torch

    torch.set_num_threads(1)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path + ".tmp")
    listener.listen(64)
    os.rename(socket_path + ".tmp", socket_path)  # clients see the socket only once it accepts
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}  # child pid -> its client's connection
    while os.getppid() == parent:
        for key, _ in selector.select(timeout=0.02):
            if key.fileobj is listener:
                connection, _ = listener.accept()
                selector.register(connection, selectors.EVENT_READ)
                continue
            connection = key.fileobj
            selector.unregister(connection)
            request = _read_line(connection)
            if request is None:  # the client went away
                connection.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()  # nothing buffered here may reach a child's output
            pid = os.fork()
            if pid == 0:
                listener.close()
                _child(json.loads(request))  # never returns
            waiting[pid] = connection
            try:
                connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            except OSError:  # the client went away: the child still runs and is reaped below
                pass
        for pid in list(waiting):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                connection = waiting.pop(pid)
                try:
                    connection.sendall(json.dumps({"returncode": _returncode(status)}).encode() + b"\n")
                except OSError:
                    pass
                connection.close()


def _read_line(connection: socket.socket) -> bytes | None:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data


def _warning_filters(spec: str) -> None:
    """The filters a fresh interpreter takes from PYTHONWARNINGS (action:message:category:module:lineno)."""
    import builtins
    import warnings

    warnings.resetwarnings()
    for entry in filter(None, spec.split(",")):
        action, message, category, module, lineno = (entry.split(":") + [""] * 5)[:5]
        warnings.filterwarnings(action or "default", message, getattr(builtins, category, Warning) if category else Warning,
                                module, int(lineno or 0))


def _returncode(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _child(request: dict) -> None:
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        # as `python -m` in cwd: the working directory first, then PYTHONPATH, then the installed packages
        sys.path[:] = [request["cwd"], *extra, *[p for p in sys.path[1:] if p not in extra]]
        _warning_filters(request["env"].get("PYTHONWARNINGS", ""))
        stdin = os.open(os.devnull, os.O_RDONLY)
        stdout = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        stderr = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
        module = request["module"]
        sys.argv = [str(TESTS.parent / (module.replace(".", "/") + ".py")), *request["args"]]
        sys.orig_argv = [sys.executable, "-m", module, *request["args"]]  # as a real `python -m` has it
        sys.modules.pop(module, None)  # preloaded: runpy runs it afresh as __main__ (and warns if it is there)
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# ---- the client ---------------------------------------------------------------------------------------
class ForkedProcess:
    """The part of ``subprocess.Popen`` the tests use, for a child of the server."""

    def __init__(self, connection: socket.socket):
        self.connection, self.buffer = connection, b""
        self.pid = json.loads(self._line(None))["pid"]
        self.returncode: int | None = None

    def _line(self, timeout: float | None) -> bytes | None:
        """The server's next message, or None when none came within ``timeout`` seconds (None: wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.connection], [], [], left)[0]:
                return None
            chunk = self.connection.recv(65536)
            if not chunk:
                raise RuntimeError("the fork server went away while its child ran")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def poll(self) -> int | None:
        return self._wait(0.0)

    def wait(self, timeout: float | None = None) -> int:
        if self._wait(timeout) is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
        return self.returncode

    def _wait(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            line = self._line(timeout)
            if line is not None:
                self.returncode = json.loads(line)["returncode"]
                self.connection.close()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # (a child reaped by the server but not yet reported is the one pid-reuse window)
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    def __init__(self, env: dict[str, str], preload: str = "experiments.run"):
        self.directory = tempfile.mkdtemp(prefix="dlm_fork_server_")
        self.path = os.path.join(self.directory, "socket")
        self.log = open(os.path.join(self.directory, "server.log"), "w")
        self.process = subprocess.Popen([sys.executable, __file__, self.path, preload], cwd=TESTS.parent, env=env,
                                        stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def connect(self) -> socket.socket:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not os.path.exists(self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fork server did not start: {Path(self.log.name).read_text()[-2000:]}")
            time.sleep(0.05)
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(self.path)
        return connection

    def spawn(self, module: str, args, cwd: Path, env: dict[str, str], stdout: Path, stderr: Path) -> ForkedProcess:
        connection = self.connect()
        request = {"module": module, "args": list(args), "cwd": str(cwd), "env": env, "stdout": str(stdout),
                   "stderr": str(stderr)}
        connection.sendall(json.dumps(request).encode() + b"\n")
        return ForkedProcess(connection)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def usable() -> bool:
    return hasattr(os, "fork") and hasattr(socket, "AF_UNIX") and os.environ.get("DLM_TEST_FORK_SERVER", "1") != "0"


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
