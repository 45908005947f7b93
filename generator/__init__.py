"""Kernel generation workers: lease a job, search Triton candidates, verify, time, publish."""

GENERATOR_VERSION = "0.1.0"
