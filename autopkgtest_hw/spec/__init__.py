"""The hardware spec language and the device model it is matched against.

``language`` parses and validates specs (SPEC.md); ``classes`` is the one
table of classes and keys; ``hardware`` holds facts about real hardware
(drivers, nodes, PCI addresses); ``sizes`` and ``rocm`` the units and gfx
targets; ``inventory`` the frozen device model and its JSON form;
``matcher`` gives a verdict with a reason; ``coverage`` tells which specs
imply others; ``render`` describes devices for people.

May import: ``base``.
"""
