"""``python -m vexfs.fsck`` = fsck.vexfs."""

import sys

from vexfs.fsck.cli import main

sys.exit(main())
