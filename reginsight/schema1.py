"""``reginsight.schema1``: sign and verify Docker schema1 manifests (libtrust JWS).

The code lives in :mod:`reginsight.registry.schema1`; this module keeps the name
users import (``ri.schema1``, ``import reginsight.schema1``).
"""

from .registry.schema1 import *  # noqa: F403
from .registry.schema1 import __all__  # noqa: F401
