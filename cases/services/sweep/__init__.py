"""The escalation sweep: CONTRACT sections 3 and 4 applied to every loan at once.

Set-based and batched. Loans are taken in id ranges of ``COLLECTIONS_BATCH_SIZE``; each
range is one transaction of a fixed number of SQL statements, whatever the number of
cases in it (``batch``). Holds, promises and payment plans are settled once per run, over
every case, before the ranges (``housekeeping``). ``stage_map`` turns the stage rules into
the (from stage, DPD range) → to stage table the statements join to; ``sql`` holds what
differs between PostgreSQL and SQLite (the demo's database) and the priority score.

Why a second or a concurrent sweep changes nothing: every write is conditional on the
state it changes (an UPDATE matches only rows still in the old state, an INSERT meets the
unique index on the loan's live case), and events are written only for the rows a
statement actually returned. Two sweeps racing on the same rows serialise on the row
locks; PostgreSQL re-checks the WHERE clause of the second UPDATE against the committed
row and skips it. On top of that, a PostgreSQL advisory lock makes concurrent sweeps run
one after the other, so the second one's summary honestly reports no changes.
"""

from .run import sweep_batch, sweep_run
from .sql import PRIORITY_SQL, priority_sql
from .stage_map import StageMap
from .summary import SweepSummary

__all__ = ["PRIORITY_SQL", "StageMap", "SweepSummary", "priority_sql", "sweep_batch", "sweep_run"]
