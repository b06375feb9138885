"""The complete metadata, core and alerts tables together, for alembic and schema checks."""

from __future__ import annotations

import importlib

from monitor.db.models import Base

# Importing a models module registers its tables on Base.metadata. Alerts own their tables
# but share the one metadata, so migrations and the models-vs-migrations check see them all.
for _module in ("alerts.models",):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise

target_metadata = Base.metadata
