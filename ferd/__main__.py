"""`python -m ferd ...`: see ferd.cli."""
import sys

from ferd.cli import main

sys.exit(main())
