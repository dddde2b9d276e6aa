"""Errors raised for bad input. Each message names the file, the field and what was expected."""


class OddsuiteError(Exception):
    """Base of all user-facing errors; the CLI prints the message and exits with 2."""


class SpecError(OddsuiteError):
    """An ODD spec is invalid (unknown key, wrong type, out of range, unsatisfiable)."""


class SuiteError(OddsuiteError):
    """A suite on disk is missing, malformed or does not verify."""


class ModelError(OddsuiteError):
    """A model file is missing, fails its SHA-256 pin, or needs an explicit trust flag."""


class RenderError(OddsuiteError):
    """A render engine is not installed, or its worker failed."""


class UserError(OddsuiteError):
    """A problem with the user's command-line input (options that do not fit together): printed
    as one clear message, exit code 2."""
