"""autopkgtest-hw: Debian's autopkgtest, taught about hardware."""

__version__ = "0.1.0"
