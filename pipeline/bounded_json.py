"""JSON read from files a user was handed (a bundle's manifest, the schema inside a skops head), parsed
within bounds on size and nesting, so a crafted file gets one clear line instead of a RecursionError
or an exhausted memory. Standard library only: every layer may import it."""

from __future__ import annotations

import json
from typing import Any

from pipeline import ReviewTransferError


class JSONBoundsError(ReviewTransferError, ValueError):
    """JSON that is malformed, larger or nested deeper than its reader allows; the message names the file."""


def load_bounded(data: bytes | str, where: str, *, max_bytes: int, max_depth: int) -> Any:
    """``data`` parsed as JSON, or :class:`JSONBoundsError` naming ``where`` when it is longer than
    ``max_bytes``, nested deeper than ``max_depth`` arrays/objects, or not JSON."""
    if len(data) > max_bytes:
        raise JSONBoundsError(f"{where}: {len(data):,} bytes, more than the {max_bytes:,} this file may hold; "
                              "it is not one this version wrote.")
    try:
        value = json.loads(data)
    except RecursionError:
        value = None
        depth = max_depth + 1
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise JSONBoundsError(f"{where}: not valid JSON ({e}).") from None
    else:
        depth = nesting(value, max_depth + 1)
    if depth > max_depth:
        raise JSONBoundsError(f"{where}: nested more than {max_depth} levels deep; it is not one this version wrote.")
    return value


def nesting(value: Any, stop: int) -> int:
    """How deep ``value``'s lists and dicts nest (a scalar: 0), counted without recursion, up to ``stop``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest >= stop:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
