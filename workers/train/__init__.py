"""The trainer: `torchrun ... -m workers.train --spec spec.json` runs one rank of DDP training.

Only this package's modules import torch, and only in the processes torchrun starts, so the
agent and the launcher stay light. (This file must not import torch: the launcher reads
`ERROR_MARK` from it.)
"""

# The prefix of the one line a rank prints to stderr when it gives up on bad input (or a loss
# that diverged): an error another attempt would repeat. The launcher turns it into the
# attempt's exit reason instead of torchrun's generic failure summary, and reports the exit as
# not retryable, so the portal fails the job instead of requeueing it.
ERROR_MARK = "trainyard: error:"

# The prefix of the line the reporting rank prints when it stopped on SIGTERM (a cancel or a
# preemption) after writing its checkpoint; the rest says which and when. Every rank then
# exits with `STOPPED_EXIT`, and the launcher puts the line in the attempt's exit reason.
STOPPED_MARK = "trainyard: stopped:"
STOPPED_EXIT = 75  # EX_TEMPFAIL: try again later, from the checkpoint
