import sys

from gaitlib.cli import main

sys.exit(main())
