"""Kernel Registry client library."""
