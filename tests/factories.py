"""Test documents: the simulated enterprises' declarations (firmware_sim/declarations.py).

Tests import this module as `from tests import factories`; it is the same code the demo uses.
"""

from firmware_sim.declarations import *  # noqa: F403
from firmware_sim.declarations import _parcel_keys, _request_fields  # noqa: F401
