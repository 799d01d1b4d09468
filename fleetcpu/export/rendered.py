"""What every format returns: the answer for stdout, commentary for stderr.

A module of its own so that each format module imports it from here, and the
package's dispatcher (``__init__``) imports the format modules, never the
reverse: no cycle between the package and its parts.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Rendered"]


@dataclass(frozen=True)
class Rendered:
    """What a format prints: the answer on stdout, commentary (warnings) on stderr."""

    stdout: str
    stderr: str = ""
