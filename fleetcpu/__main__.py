"""``python -m fleetcpu``: the same as the ``fleetcpu`` console script."""

from .cli import entry

entry()
