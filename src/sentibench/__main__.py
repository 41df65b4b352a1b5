"""``python -m sentibench`` (and ``torchrun -m sentibench``) entry point."""

import sys

from .cli import main

sys.exit(main())
