"""``python -m devtools.services``: see :mod:`devtools.services.cli`."""

import sys

from devtools.services.cli import main

sys.exit(main())
