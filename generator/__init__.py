"""Kernel generation workers (search, compile, verify, time, publish). Filled in by the generator issue."""
