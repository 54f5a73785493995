"""``autopkgtest-virt-hwgpu``: the protocol proxy around any inner virt server.

``server`` is the command line; ``startup`` sets the testbed up (inner
server, inventory, allocation, passthrough plan); ``hooks`` rewrites the
inner server's replies (checks the devices after open/revert/reboot,
extends capabilities); ``proxy`` forwards the protocol; ``probe`` is the
POSIX sh check run inside the testbed; ``backends/`` holds one adapter per
inner virt server.

May import: ``base``, ``spec``, ``detect``, ``locks``.
"""
