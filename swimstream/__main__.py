"""``python -m swimstream``: the same as the ``swimstream`` command."""

import sys

from swimstream.cli import main

sys.exit(main())
