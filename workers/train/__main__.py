from __future__ import annotations

import sys

from workers.train.main import main

sys.exit(main())
