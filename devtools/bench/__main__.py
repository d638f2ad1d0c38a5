"""``python -m devtools.bench``: see :mod:`devtools.bench.cli`."""

import sys

from devtools.bench.cli import main

sys.exit(main())
