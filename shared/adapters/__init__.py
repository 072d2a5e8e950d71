"""Adapters behind the ports of shared/ports.py: google_* talk to Google APIs (or their emulators),
local_* are loopback or in-process stand-ins for tests and the embedded mode."""
