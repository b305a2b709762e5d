"""Make BasicSR see SMFD, with BasicSR's own entry points.

BasicSR 1.4.2 has no plugin discovery: it only imports ``*_arch.py`` (etc.) from its own folders. This module
is imported at interpreter start by ``smfd_autoload.pth`` (installed into site-packages by ``setup.py``) and
installs a one-shot import hook that reacts only to ``import basicsr``:

* before BasicSR executes, it registers a stand-in for ``torchvision.transforms.functional_tensor``, which
  torchvision >= 0.17 removed and ``basicsr/data/degradations.py`` still imports;
* after BasicSR executes, it patches what BasicSR's stock entries get wrong for a plugin user
  (``smfd_models.basicsr_patches``) and imports ``smfd_arch``, ``smfd_data`` and ``smfd_models``, whose
  decorators register SMFD in BasicSR's registries.

Start-up cost is one small stdlib-only module: torch and basicsr are imported only when the user imports
basicsr. ``SMFD_NO_AUTOLOAD=1`` disables the hook. A failure of SMFD's own code becomes a warning, never a crash
of an unrelated program that happens to import basicsr.
"""
import os
import sys

DISABLE_ENV = 'SMFD_NO_AUTOLOAD'
_TARGET = 'basicsr'
_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'
# The modules whose decorators register SMFD in BasicSR's registries (archs, datasets, models, losses, metrics).
REGISTERING_MODULES = (
    'smfd_arch.smfd_unet_arch',
    'smfd_arch.mask_generator_arch',
    'smfd_data.face_dataset',
    'smfd_models.losses',
    'smfd_models.metrics',
    'smfd_models.smfd_model',
    'smfd_models.mask_generator_model',
)


def prepare_basicsr():
    """Register the ``functional_tensor`` stand-in (must run before ``import basicsr``)."""
    if _FUNCTIONAL_TENSOR in sys.modules:
        return
    import importlib
    try:
        importlib.import_module(_FUNCTIONAL_TENSOR)
        return
    except ImportError:
        pass
    import types

    from torchvision.transforms import functional
    shim = types.ModuleType(_FUNCTIONAL_TENSOR, 'Stand-in installed by smfd_autoload for basicsr 1.4.2.')
    shim.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[_FUNCTIONAL_TENSOR] = shim


def register():
    """Import basicsr (prepared) and SMFD's packages so every SMFD name is in BasicSR's registries.

    Safe to call any number of times; the project entries call it explicitly so they work with the hook disabled.
    """
    prepare_basicsr()
    import basicsr  # noqa: F401  (fires the hook when it is installed and basicsr is not imported yet)
    _after_basicsr()


def _after_basicsr():
    """Patch basicsr, then import every registering module; one broken module does not stop the others."""
    import importlib

    from smfd_models import basicsr_patches
    basicsr_patches.apply()
    failures = []
    for name in REGISTERING_MODULES:
        try:
            importlib.import_module(name)
        except Exception as error:
            failures.append(f'{name}: {type(error).__name__}: {error}')
    if failures:
        raise ImportError('; '.join(failures))


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
            _after_basicsr()
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
            _after_basicsr()
        except Exception as error:
            _warn('registering SMFD', error)
        return
    sys.meta_path.insert(0, _BasicSRFinder())


def uninstall():
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _BasicSRFinder)]
