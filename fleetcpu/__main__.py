"""``python -m fleetcpu``: the same as the ``fleetcpu`` console script."""

from .launch import main

__all__ = []

main()
