"""Porterbox sessions: an interactive shell in a testbed with the devices
passed in, for a limited time (``session``).

May import: ``base``, ``locks``, ``virt``.
"""
