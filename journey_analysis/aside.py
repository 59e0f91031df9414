"""Work done aside: a function computed in a forked process while the caller goes on.

A notebook of a run is one thread, so the machine's second core is idle most of a run. Where a step has
two independent parts (the English sentiment model and the other languages' models; the map's themes and
quotes and its behaviour lanes), :class:`Aside` computes one part in a forked child process while the
caller computes the other. The child runs the same code on the same inputs (inherited through ``fork``, not
copied), so the result is the one the caller would have computed; it comes back pickled through a pipe.

Whatever goes wrong aside (no ``fork`` on this platform, the child fails or dies, its result cannot be
pickled) makes :meth:`Aside.result` compute the function in the caller instead: an error of the function
itself is then raised there, with its traceback, as without the child. Only Linux forks (macOS's fork
is unsafe with the system frameworks, Windows has none). Code that must not run in a forked child (a
thread pool created before the fork is gone in the child: lingua's) checks :func:`in_child` and raises.
"""
from __future__ import annotations

import os
import sys

__all__ = ["Aside", "in_child"]

_CHILD = False


def in_child() -> bool:
    """True inside the forked process of an :class:`Aside`."""
    return _CHILD


def _run(conn, fn, args, kwargs) -> None:
    global _CHILD
    _CHILD = True
    # a Jupyter kernel's stream objects belong to its parent's threads: print to the process's own files
    if sys.__stdout__ is not None and sys.__stderr__ is not None:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    try:
        reply = (True, fn(*args, **kwargs))
    except BaseException:  # noqa: BLE001 - the caller computes it again and raises it there
        reply = (False, None)
    try:
        conn.send(reply)
    except Exception:  # noqa: BLE001 - a result that cannot be pickled: computed by the caller
        conn.send((False, None))
    conn.close()


class Aside:
    """``fn(*args, **kwargs)`` computed in a forked process, started at once; :meth:`result` waits for it.

    >>> job = Aside(sum, [1, 2, 3])   # the caller goes on meanwhile
    >>> job.result()
    6
    """

    def __init__(self, fn, *args, **kwargs):
        self._call = (fn, args, kwargs)
        self._proc = self._conn = None
        self._parent = os.getpid()
        if not sys.platform.startswith("linux") or _CHILD:
            return
        try:
            import multiprocessing as mp

            ctx = mp.get_context("fork")
            self._conn, child = ctx.Pipe(duplex=False)
            self._proc = ctx.Process(target=_run, args=(child, fn, args, kwargs), daemon=True)
            self._proc.start()
            child.close()
        except (OSError, ValueError, RuntimeError, AssertionError):  # no process (e.g. in a daemon): in result()
            self._proc = self._conn = None

    @property
    def forked(self) -> bool:
        """Whether a child process computes it (False: :meth:`result` computes it in the caller)."""
        return self._proc is not None

    def result(self):
        """The function's value: the child's when it succeeded, else computed here (raising its error)."""
        fn, args, kwargs = self._call
        if self._proc is not None:
            ok, value = False, None
            try:
                ok, value = self._conn.recv()
            except (EOFError, OSError):  # the child died
                pass
            finally:
                self._conn.close()
                self._proc.join()
                self._proc = self._conn = None
            if ok:
                return value
        return fn(*args, **kwargs)

    def cancel(self) -> None:
        """Stop the child (its result is not wanted); :meth:`result` would then compute it here."""
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if proc is not None:
            try:
                proc.kill()
                proc.join()
                conn.close()
            except Exception:  # noqa: BLE001 - already gone, or the interpreter is shutting down
                pass

    def __del__(self):  # a job whose result was never asked for: do not leave its process behind
        if getattr(self, "_proc", None) is not None and os.getpid() == self._parent:
            self.cancel()
