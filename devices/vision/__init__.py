"""Image work for the camera driver that zxing-cpp does not do itself (no I/O, no asyncio)."""
