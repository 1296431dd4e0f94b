"""What the tests and the benches share, and the product never imports: emulators written from the
vendors' manuals and the standards (not from firmware_sim or our drivers), the simulated
enterprises' documents as central's models (`factories`), and runners for central, the edge agent
and Mosquitto as real processes on free ports."""
