"""The one error a bad config raises, named by its field."""


class ConfigError(ValueError):
    """A config value is missing or not allowed; the message starts with the field's path."""

    def __init__(self, field: str, message: str):
        super().__init__(f"config field '{field}': {message}")
        self.field = field
