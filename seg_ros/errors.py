"""Error types shared by the rooms. Each message names the problem and the fix."""

from __future__ import annotations


class SegRosError(Exception):
    """Base class for errors a user can act on (bad input, bad file, bad parameter)."""


class CodecError(SegRosError, ValueError):
    """An image message could not be decoded or encoded."""


class EngineError(SegRosError, RuntimeError):
    """A model could not be loaded or run."""


class ConfigError(SegRosError, ValueError):
    """A parameter, argument or data folder is invalid."""


class ParameterTypeError(ConfigError):
    """A parameter given a value of another type (a string for a number): a usage error, like
    malformed ROS arguments (the node exits 2)."""


def is_user_error(e: BaseException) -> bool:
    """True for errors that deserve one line, not a traceback (ours, plus missing files)."""
    return isinstance(e, SegRosError | FileNotFoundError)
