"""Renamed keyword arguments: the old name works for one more release, with a warning.

The public entry points share argument names (issue 23): ``learning_rate``, ``rtol``,
``max_krylov_dim``, ``times`` with ``discrete``. Where a function's argument was
renamed, :func:`renamed_arguments` maps the old keyword onto the new one and emits a
``DeprecationWarning`` naming both, so that callers can move over before the old name
is removed.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable

__all__ = ["renamed_arguments"]


def renamed_arguments(**renames: str | tuple[str, Callable[[object], dict]]):
    """Decorator: accept each old keyword ``old=`` as its new name, with a warning.

    Args:
        **renames: ``old="new"`` for a plain rename; ``old=("hint", fn)`` where the old
            keyword maps onto several new ones: ``fn(value)`` returns the new keywords
            (a dict) and ``hint`` says what to write instead, for the message.

    The wrapped function raises ``TypeError`` when an old keyword and one of the new
    keywords it maps onto are both given. The warning points at the caller
    (``stacklevel=2``).
    """

    def decorate(fn):
        params = inspect.signature(fn).parameters
        for old, new in renames.items():
            if old in params:
                raise ValueError(f"{fn.__name__} still has the old argument {old!r}")
            targets = [new] if isinstance(new, str) else []
            if any(t not in params for t in targets):
                raise ValueError(f"{fn.__name__} has no argument {new!r}")

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old in renames.keys() & kwargs.keys():
                new = renames[old]
                value = kwargs.pop(old)
                if isinstance(new, str):
                    hint, mapped = f"{new}=", {new: value}
                else:
                    hint, mapped = new[0], new[1](value)
                clash = mapped.keys() & kwargs.keys()
                if clash:
                    raise TypeError(
                        f"{fn.__name__}() got both {old}= (deprecated) and "
                        f"{', '.join(sorted(k + '=' for k in clash))}; pass only {hint}"
                    )
                warnings.warn(
                    f"{fn.__name__}(): the argument {old}= is deprecated and will be "
                    f"removed in the next minor release; use {hint}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs.update(mapped)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
