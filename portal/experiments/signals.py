"""What the experiments app tells the apps above it (docs/design.md, "Signals").

`search_finished(sender=Search, search=<Search>)` is sent once after the commit that ended a
search (every trial done, the budget spent, or cancelled).
"""

from __future__ import annotations

from django.dispatch import Signal

search_finished = Signal()
