"""Error types whose message is shown to the user as one line."""


class ScfactorError(Exception):
    """Base class: a problem the user can fix (bad input, bad option, absent device)."""


class InputError(ScfactorError):
    """An input file is missing, unreadable or violates its data contract.

    The message names the file and the problem, e.g. ``"counts.h5ad: 12 negative values in X"``.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DeviceError(ScfactorError):
    """An accelerator was requested that is not available."""
