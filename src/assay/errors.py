"""Typed errors. Every error names the problem and, where there is one, the fix.

The CLI prints ``str(error)`` as one line and exits non-zero; ``--debug`` adds the traceback.
"""

from __future__ import annotations


class AssayError(Exception):
    """Base class: a problem the user can act on."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UserInputError(AssayError):
    """Bad input: a file, a flag, a config value. Raised before any model call."""

    exit_code = 2


class DataError(UserInputError):
    """A dataset or prompt problem, located as ``file:line``."""

    def __init__(self, path: str, line: int | None, problem: str, hint: str | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}", hint)
        self.path = path
        self.line = line


class MissingKeyError(UserInputError):
    def __init__(self, env_var: str, spec: str) -> None:
        super().__init__(
            f"No API key for {spec}",
            f"set {env_var} or point the model at another endpoint with --base-url",
        )
        self.env_var = env_var


class ProviderError(AssayError):
    """A call to a model failed. ``retryable`` tells the engine whether to try again."""

    retryable = False
    kind = "provider_error"
    # The server asked to slow down (429, 503, 529): adaptive concurrency backs off.
    overloaded = False
    # The endpoint could not be reached: the call may go to another of the model's endpoints.
    connection_failed = False


class RateLimitError(ProviderError):
    retryable = True
    kind = "rate_limit"
    overloaded = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, "lower --concurrency or wait; Assay already honours Retry-After")
        self.retry_after = retry_after


class ProviderUnavailableError(ProviderError):
    """5xx and connection failures."""

    retryable = True
    kind = "unavailable"

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        overloaded: bool = False,
        connection_failed: bool = False,
    ) -> None:
        super().__init__(message, "the provider is failing; check its status or --base-url")
        self.retry_after = retry_after
        self.overloaded = overloaded
        self.connection_failed = connection_failed


class RequestTimeoutError(ProviderError):
    retryable = True
    kind = "timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, "raise --timeout or lower --max-tokens")


class AuthError(ProviderError):
    kind = "auth"

    def __init__(self, message: str, env_var: str | None = None) -> None:
        hint = f"check {env_var}" if env_var else "check the API key for this endpoint"
        super().__init__(message, hint)


class BadRequestError(ProviderError):
    kind = "bad_request"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint or "check the model name and generation parameters")


class ContextLengthError(BadRequestError):
    kind = "context_length"

    def __init__(self, message: str) -> None:
        super().__init__(message, "shorten the prompt or input, or lower --max-tokens")


class BudgetExceeded(AssayError):
    """A hard budget (--max-cost, --max-calls) would be exceeded by the next call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "raise the budget and continue with --resume")
