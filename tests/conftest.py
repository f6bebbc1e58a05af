"""mechcheck's own tests run offline: no hub lookups (they hang ~23 s before failing)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
