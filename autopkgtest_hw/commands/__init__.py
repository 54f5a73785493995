"""One module per ``autopkgtest-hw`` sub-command."""
