"""Names as a person's terminal shows them: control characters escaped, never sent raw.

A file name may hold any byte but ``/`` and NUL. An ESC in one would let a dropped file recolour,
clear or retitle the operator's terminal when ``batchd status`` or a log line prints it, and a
bidirectional override can make a name read as another. Each such character is shown as a Python
escape (``\\x1b``, ``\\u202e``), so the name stays recognisable and unambiguous.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode bidirectional embedding/override/isolate marks.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control or direction-changing character escaped."""
    return _UNSAFE.sub(_escape, text)


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
