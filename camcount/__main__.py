"""`python -m camcount` is the `camcount` command."""

from __future__ import annotations

import sys

from camcount.cli import main

if __name__ == "__main__":
    sys.exit(main())
