"""The parts of ``autopkgtest-virt-hwgpu`` below its command line (``virtserver``).

``startup`` sets the testbed up (inner server, inventory, allocation,
passthrough plan); ``hooks`` rewrites the inner server's replies (checks the
devices after open/revert/reboot, extends capabilities).  The protocol itself
is forwarded by ``proxy``.
"""
