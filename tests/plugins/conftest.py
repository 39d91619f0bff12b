"""The test plug-in package's sources importable here (its entry points need ``installed.install``)."""

import sys

from tests.plugins.installed import PACKAGE

sys.path.insert(0, str(PACKAGE))
