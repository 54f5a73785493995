"""One module per ``autopkgtest-hw`` sub-command: parse, call the parts, render.

May import: ``base``, ``spec``, ``detect``, ``locks``, ``virt``, ``source``,
``fleet``, ``porterbox``.
"""
