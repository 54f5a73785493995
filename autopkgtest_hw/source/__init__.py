"""Debian source packages and the autopkgtest they are run with.

``control`` reads debian/control and debian/tests/control as autopkgtest
does; ``architecture`` is dpkg's architecture table; ``hwspec_field`` reads
``XS-Requires-Hwspec``; ``planner`` says which tests run here; ``linter``
and ``migration`` check packages and suggest specs; ``adt_compat`` bridges
to the installed autopkgtest and ``runner`` runs it; ``archive`` reads
Sources indexes; ``build`` runs sbuild in a ``hwgpu`` testbed, with
``build_devices`` (what to lock), ``build_keeper`` (holding the locks until
the build's last process is gone) and ``build_progress`` (its phases).

May import: ``base``, ``spec``, ``locks``.
"""
