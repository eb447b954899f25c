"""A defense that allocates (and touches) memory without bound; stopped by the address-space limit.

Capped at CAP_GB so that a missing limit fails the test instead of the machine.
"""

from harness import hookimpl
from harness.specs import DefenseSpec

CHUNK = 256 << 20
CAP_GB = 12


class HogFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        hoard = []
        for _ in range(CAP_GB * 4):
            hoard.append(bytearray(b"x") * CHUNK)
        raise RuntimeError(f"allocated {len(hoard) * CHUNK >> 20} MiB without being stopped")


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="hog-fit", factory=HogFit, description="eats memory", framework="torch",
                        params={"seed": 0, "progress": True})]
