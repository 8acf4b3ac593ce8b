"""``python -m prodfusion.cli``: the ``prodfusion`` command."""

import sys

from prodfusion.cli.main import main

sys.exit(main())
