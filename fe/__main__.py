"""`python -m fe ...`: the same as the `fe` command."""

import sys

from fe.cli import main

sys.exit(main())
