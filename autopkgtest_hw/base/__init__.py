"""The foundation every part stands on: user-facing errors and exit codes
(``errors``), logging in autopkgtest's style (``log``), escaping of strings
from hardware and files (``text``), input bounds (``bounds``), durations,
the quit/SIGTERM/SIGKILL ending of a child (``stopping``) and the shared
argparse options (``argparser``).

May import: nothing of the project.
"""
