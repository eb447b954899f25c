"""A defense whose training crashes."""

from harness import hookimpl
from harness.specs import DefenseSpec


class CrashFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        raise RuntimeError("boom: the submission's training crashed")


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="crash-fit", factory=CrashFit, description="crashes", framework="torch",
                        params={"seed": 0, "progress": True})]
