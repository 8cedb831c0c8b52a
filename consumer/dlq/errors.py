"""``segstream-dlq``'s errors, each with the exit code it ends the command with.

=====  ===========================================================================================
code   meaning
=====  ===========================================================================================
0      done: every selected record was handled (or, for ``inspect`` and ``--dry-run``, reported)
1      partial: some selected records were left in the dead-letter topic (no original topic to
       replay to, or a selection too scattered to track); the summary says which and why
2      usage or configuration: a bad option or setting, a missing topic; nothing was changed
3      fenced: another run of the same replay group started and took over; this run's open
       transaction was aborted, nothing of it is half-done
4      Kafka: the cluster did not answer in time or a transaction failed; everything up to the
       last committed transaction stands, the rest was aborted; run the command again
70     internal error (a bug; the traceback is in the log): as for 4, what was committed stands
130    interrupted (Ctrl-C / SIGINT): the current transaction was committed, the run stopped
143    terminated (SIGTERM): the same
=====  ===========================================================================================
"""

from __future__ import annotations

import enum

from consumer.errors import ConsumerError


class ExitCode(enum.IntEnum):
    OK = 0
    PARTIAL = 1
    USAGE = 2
    FENCED = 3
    KAFKA = 4
    INTERNAL = 70  # sysexits.h EX_SOFTWARE
    INTERRUPTED = 130
    TERMINATED = 143


class DlqError(ConsumerError):
    """Root of the tool's errors."""

    exit_code = ExitCode.KAFKA


class UsageError(DlqError):
    """A bad option, setting or topic: found before anything was changed."""

    exit_code = ExitCode.USAGE


class FencedError(DlqError):
    """A newer run with the same transactional id took over (Kafka's producer fencing)."""

    exit_code = ExitCode.FENCED


class KafkaUnavailableError(DlqError):
    """The cluster did not answer in time, or a transaction failed and was aborted."""

    exit_code = ExitCode.KAFKA
