import sys

from autopkgtest_hw.cli import main

sys.exit(main())
