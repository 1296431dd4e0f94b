"""Bondgate's kernel: what every package shares and nothing above it owns.

`wire` is the contract between edge and central (records, events, canonical JSON, signatures);
`status` the clearance vocabulary; `config`, `logs`, `tasks`, `backoff`, `timefmt` and `sqlite` the
runtime every process is built on. The kernel imports no other Bondgate package: devices, edge,
central and firmware_sim import it, and `bondgate` (the launcher) imports them all.
"""
