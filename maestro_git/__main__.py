"""`python -m maestro_git`: the `maestro` command."""

import sys

from maestro_git.cli import main

sys.exit(main())
