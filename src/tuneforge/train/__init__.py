"""The training engine: loop, recipes (SFT, DPO), run setup.

``tuneforge.train(...)`` is also the public API function. Python binds a subpackage as an attribute of
its parent once imported, which would hide that function behind this package; making this package
callable keeps ``tuneforge.train(config)`` working either way.
"""
import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .. import run_config

        return run_config(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
