"""Errors raised on bad input: one line that names the file and the field."""


class InputError(ValueError):
    """Bad user input (config, data file, column, value).

    The message is one line and names the file and the field at fault, e.g.
    ``InputError("results/x.h5ad: obs column 'cell_type' is missing")``.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))

