"""Integration tier: the real engine on a thread (the Harness) end to end against the emulator over loopback."""
