"""``python -m satclassify_plugin.headless ...`` = the ``satclassify`` command."""

import sys

from .cli import main

sys.exit(main())
