"""harness: a plugin-based competition harness for robust image classification.

Importing this package never imports torch or tensorflow.
"""

import pluggy

__version__ = "0.1.0"

#: Decorator for plugin hook implementations: ``@hookimpl def harness_register_attacks(): ...``
hookimpl = pluggy.HookimplMarker("harness")

__all__ = ["__version__", "hookimpl"]
