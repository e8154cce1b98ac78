"""The daemon's exceptions: a small semantic hierarchy so callers can decide by kind."""


class DaemonError(Exception):
    """Base for every error batchd raises on purpose."""


class ConfigError(DaemonError):
    """A setting is wrong; the message says which one and what to change."""


class FolderError(DaemonError):
    """The folder layout cannot be used (missing, unwritable, or split across filesystems)."""


class AlreadyRunningError(DaemonError):
    """Another batchd instance holds the lock on this root."""


class StateCorruptError(DaemonError):
    """The state database cannot be read; batchd refuses to start rather than start empty."""


class StateLostError(DaemonError):
    """The state database is missing, empty or was replaced while inputs are in flight: run `batchd recover`."""


class CredentialError(DaemonError):
    """No usable API key was found."""


class TransientError(DaemonError):
    """A call may succeed if tried again later (network, 5xx, 429, dropped streams)."""

    def __init__(self, message: str, retry_after: float | None = None, *, ambiguous: bool = True) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # Ambiguous: the request may have been carried out although no answer arrived (timeout,
        # dropped connection, 5xx), so a POST must be reconciled before it is sent again.
        self.ambiguous = ambiguous


class TokenLimitError(TransientError):
    """The model's enqueued-token queue had no room when the batch was created (Azure answers
    ``token_limit_exceeded`` then, not at validation): nothing was created, so the create is not
    ambiguous; the model is held back like after a batch that failed validation for it."""


class FileLimitError(TransientError):
    """The service refused an upload because it keeps no more input files (Azure: 500 a resource).
    Nothing was uploaded, so it is not ambiguous; the input is fine and nothing is paid yet: the
    part waits for room (see service/file_room.py), it never fails for this."""


class AccountError(DaemonError):
    """The account cannot work right now (bad key, no permission, no quota): hold every input."""


class PermanentError(DaemonError):
    """This input can never succeed as it is; it goes to failed/ with the message."""


class NotFoundError(PermanentError):
    """The service says the object does not exist (HTTP 404): a batch it lost, a file it deleted."""


class MalformedReplyError(TransientError):
    """The service answered, but not with the object asked for (a file id of 5, an HTML page).

    A fault, never a verdict on the input. Ambiguous like a lost answer: a POST may have been
    carried out, so it is reconciled before it is sent again. The message names the call and the
    field, never the reply's content.
    """

    def __init__(self, call: str, problem: str) -> None:
        super().__init__(f"malformed reply to {call}: {problem}")
        self.call = call
