"""Errors meant for users: each carries a one-line message that says what is wrong."""


class CnnoptError(Exception):
    """Base class of every error the workflow reports to its user."""


class ConfigError(CnnoptError):
    """The configuration is invalid."""


class DataError(CnnoptError):
    """The data source cannot be fetched, verified or decoded."""


class Interrupted(CnnoptError):
    """A training was told to stop (SIGTERM, SLURM's warning signal) and saved a checkpoint:
    a retry of the same job resumes where it stopped."""
