"""The base of every protocol error raised by `devices.protocols` (h11's `ProtocolError`).

Each protocol subclasses it, and its subclass's docstring says when it is raised: for the serial
protocols (MT-SICS, Toledo, scanners) only on local misuse — received bytes never raise, they
become events — and for the decoders of whole messages (Modbus weight registers, MQTT sensor
payloads) on a message that is not valid. A caller that only needs "this protocol refused" catches
`ProtocolError`.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """A protocol refused: an unencodable value, a command out of turn, or an invalid message."""
