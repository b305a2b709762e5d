"""The start-up hook: BasicSR sees SMFD after a plain ``import basicsr``, with BasicSR's own entry points.

``smfd_autoload.pth`` (installed into site-packages by ``setup.py``) imports this module at interpreter start and
calls ``install()``, which puts a one-shot ``sys.meta_path`` finder in place that reacts only to ``import basicsr``:
before BasicSR executes it runs ``smfd_basicsr.registration.prepare_basicsr`` (the ``functional_tensor``
stand-in), after it ``after_basicsr`` (patches + registering modules). See ``smfd_basicsr.registration``.

Start-up cost is this stdlib-only module: torch and basicsr are imported only when the user imports basicsr.
``SMFD_NO_AUTOLOAD=1`` disables the hook. A failure of SMFD's own code becomes a warning, never a crash of an
unrelated program that happens to import basicsr.
"""
import os
import sys

from smfd_basicsr.registration import after_basicsr, prepare_basicsr

DISABLE_ENV = 'SMFD_NO_AUTOLOAD'
_TARGET = 'basicsr'


def _warn(stage, error):
    import warnings
    warnings.warn(
        f'smfd_autoload: {stage} failed ({type(error).__name__}: {error}); SMFD is not registered with BasicSR. '
        f'Set {DISABLE_ENV}=1 to silence this hook.',
        RuntimeWarning,
        stacklevel=3)


class _HookedLoader:
    """Wraps basicsr's real loader: prepare before it executes, register after."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # everything else (get_resource_reader, is_package, ...) is the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            prepare_basicsr()
        except Exception as error:  # basicsr may still import (old torchvision); report and go on
            _warn('preparing basicsr', error)
        self._loader.exec_module(module)  # BasicSR's own errors propagate unchanged
        try:
            after_basicsr()
        except Exception as error:
            _warn('registering SMFD', error)


class _BasicSRFinder:
    """A ``sys.meta_path`` finder that fires once, for the top-level ``basicsr`` package only."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET:
            return None
        uninstall()
        import importlib.util
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _HookedLoader(spec.loader)
        return spec


def install():
    """Install the hook (called by the ``.pth`` file at interpreter start). Cheap: stdlib only, no imports."""
    if os.environ.get(DISABLE_ENV, '').strip() not in ('', '0'):
        return
    if any(isinstance(finder, _BasicSRFinder) for finder in sys.meta_path):
        return
    if _TARGET in sys.modules:  # basicsr imported before us (unusual): register right away
        try:
            after_basicsr()
        except Exception as error:
            _warn('registering SMFD', error)
        return
    sys.meta_path.insert(0, _BasicSRFinder())


def uninstall():
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _BasicSRFinder)]
