"""Unit tier: in-process, no subprocess, no socket but the emulator's; all of it in under 30 s (`make test-fast`)."""
