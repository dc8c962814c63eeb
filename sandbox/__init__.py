"""Sandboxed execution of untrusted completions. See ``sandbox.api`` for the contract."""
