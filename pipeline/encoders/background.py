"""A value made in a background thread while the caller does other work: an encoder's runtime session compiles
(openvino and onnxruntime release the GIL while they do) as the tokenizer, or another part's session, loads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """``make()`` running in a thread from construction; :meth:`result` waits for its value and raises what it
    raised, in the caller's thread. The process waits for the thread before it exits, even when nobody asks for
    the value (a session started for texts that turn out to need another part): a runtime torn down while it
    compiles in a thread may crash the exit."""

    def __init__(self, make: Callable[[], T], name: str = "background load") -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(make,), name=name)
        self._thread.start()

    def _run(self, make: Callable[[], T]) -> None:
        try:
            self._value = make()
        except BaseException as e:  # handed to the caller by result()
            self._error = e

    def result(self) -> T:
        """The value ``make()`` returned, once it has; its exception, raised again here, if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
