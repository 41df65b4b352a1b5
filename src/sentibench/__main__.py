"""``python -m sentibench`` (and ``torchrun -m sentibench``) entry point."""

import sys

from sentibench.cli import main

sys.exit(main())
