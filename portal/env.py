"""The portal's reader of the environment: the node plane's one `Env`, failing the Django way.

A malformed or missing value raises `ImproperlyConfigured` naming the variable. The reading
rules (and the `<NAME>_FILE` variants for secrets) live once, in `workers.env`; the settings
both planes read are defined once, in `workers.config`, and take this reader.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from workers.env import Env

env = Env(ImproperlyConfigured)
