"""Internals shared across convolve's subpackages (argument checks, ...); not public API."""
