"""Ctrl-C in the ``ntkspec`` console script, handled from its first line.

Standard library only: ``ntkspec/__init__.py`` imports this module before anything else
(before ``jax``), so that the console script (``ntkspec ...`` or ``python -m ntkspec
...``) answers SIGINT while the package is still importing. In every other process
it does nothing: the library never changes its caller's signal handlers.

Two phases:

* Until the command starts (imports, argument parsing; about a second), SIGINT prints
  one line and exits with code 130 at once. Nothing has been written yet, so there is
  nothing to clean up. Raising ``KeyboardInterrupt`` there would not do: Python ignores
  (prints and drops) an exception raised inside a garbage-collector callback, and
  ``jax`` registers one that runs many times while modules import, so the interrupt
  was lost about half the time and the command ran on.
* While the command runs, :func:`raise_interrupt` raises ``KeyboardInterrupt`` so that
  clean-up code runs (``cli.main`` prints the one line and exits with 130). When the
  signal lands inside a garbage-collector callback or a ``__del__`` method, where the
  exception would be dropped, it is delivered again 20 ms later, once that code has
  returned.
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import os
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = [
    "install_early",
    "raise_interrupt",
    "interrupts_raise",
    "redeliver_if_dropped",
]

#: Exit code of a command stopped by SIGINT (128 + 2, as shells report it).
EXIT_INTERRUPTED = 130
#: Delay of a SIGINT delivered again after it landed where Python drops exceptions.
_REDELIVER_S = 0.02


def _is_console_script() -> bool:
    """True when this process is ``ntkspec ...`` or ``python -m ntkspec ...``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) in ("ntkspec", "ntkspec.exe", "ntkspec-script.py"):
        return True
    # ``python -m ntkspec``: while the package imports, argv[0] is "-m"
    orig = list(getattr(sys, "orig_argv", ()))
    if argv0 == "-m" and "-m" in orig:
        i = orig.index("-m")
        return i + 1 < len(orig) and orig[i + 1] == "ntkspec"
    return False


def _prog() -> str:
    """``ntkspec COMMAND`` for the one-line message (the command as typed)."""
    args = sys.argv[1:]
    if args and args[0].isalpha():
        return f"ntkspec {args[0]}"
    return "ntkspec"


def _exit_now(signum, frame) -> None:  # noqa: ARG001 (signal handler API)
    os.write(2, f"{_prog()}: interrupted\n".encode())
    os._exit(EXIT_INTERRUPTED)


def install_early() -> None:
    """In the console script, SIGINT exits at once (130, one line) until the command.

    Elsewhere, and where SIGINT is ignored (SIG_IGN) or handled by the caller, nothing
    changes.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if not _is_console_script():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _exit_now)


def _dropping_frame(frame) -> bool:
    """True when ``frame`` runs where Python drops exceptions (gc callback, __del__)."""
    codes = set()
    for cb in gc.callbacks:
        code = getattr(getattr(cb, "__func__", cb), "__code__", None)
        if code is not None:
            codes.add(code)
    while frame is not None:
        if frame.f_code in codes or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def redeliver_if_dropped(signum, frame) -> bool:
    """True, and the signal delivered again shortly, where a raise would be dropped.

    For a handler about to raise: ``frame`` runs in a gc callback or ``__del__``.
    """
    if not _dropping_frame(frame):
        return False
    # Deliver it again from another thread: by then that code has returned (a
    # re-delivery from here would run the handler again at once, still inside it).
    timer = threading.Timer(_REDELIVER_S, _thread.interrupt_main, (signum,))
    timer.daemon = True
    timer.start()
    return True


def raise_interrupt(signum, frame) -> None:
    """Raise ``KeyboardInterrupt``, or deliver the signal again where it'd be lost."""
    if redeliver_if_dropped(signum, frame):
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """While the command runs, SIGINT raises ``KeyboardInterrupt`` (main thread).

    Replaces Python's default handler or the early one of :func:`install_early`, never
    a handler the caller set (nor SIG_IGN), and restores it on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous not in (signal.default_int_handler, _exit_now):
        yield
        return
    signal.signal(signal.SIGINT, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ntkspec/__init__.py imports this module first: in the console script the early
# handler is then in place before jax imports (a no-op in any other process).
install_early()
