"""A pseudo-terminal pair standing in for a serial cable: the simulator holds the master side, the
driver opens the slave path with pyserial exactly as it would open /dev/ttyUSB0."""

from __future__ import annotations

import contextlib
import os
import tty
from dataclasses import dataclass


@dataclass
class PtyPair:
    master: int
    path: str  # give this to the driver
    _slave: int

    @classmethod
    def open(cls) -> PtyPair:
        master, slave = os.openpty()
        tty.setraw(master)  # no CR→LF translation, no echo
        tty.setraw(slave)
        return cls(master=master, path=os.ttyname(slave), _slave=slave)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.master, view)
            view = view[written:]

    def close(self) -> None:
        """Unplug: the driver's next read fails like a USB device pulled out."""
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
