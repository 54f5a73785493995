"""Sharing devices between CI runs, builds and porterbox sessions.

``lockdir`` opens the lock directory safely; ``allocate`` chooses devices
and flocks them; ``tickets`` is the fair waiting queue; ``keeper`` and
``holdlocks`` keep the locks held until the last testbed process is gone;
``holders``/``holder_options`` record who holds a device; ``lockstate``
answers ``status``.

May import: ``base``, ``spec``.
"""
