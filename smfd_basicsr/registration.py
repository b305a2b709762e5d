"""Register SMFD in BasicSR's registries (stdlib-only at import: the start-up hook imports this module).

BasicSR 1.4.2 has no plugin discovery: it only imports ``*_arch.py`` (etc.) from its own folders. ``register()``
does by hand what the start-up hook (``smfd_basicsr.autoload``) does on ``import basicsr``:

1. ``prepare_basicsr()``: a stand-in for ``torchvision.transforms.functional_tensor``, which torchvision >= 0.17
   removed and ``basicsr/data/degradations.py`` still imports (must run before basicsr executes);
2. ``import basicsr``;
3. ``after_basicsr()``: apply ``smfd_basicsr.patches`` and import the registering modules, whose decorators put
   SMFD's archs, datasets, models, losses and metrics into BasicSR's registries.
"""
import importlib
import sys

_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'
# The modules whose decorators register SMFD in BasicSR's registries (archs, datasets, models, losses, metrics).
REGISTERING_MODULES = (
    'smfd_arch.smfd_unet_arch',
    'smfd_arch.mask_generator_arch',
    'smfd_arch.seg_baselines_arch',
    'smfd_data.face_dataset',
    'smfd_data.degraded_dataset',
    'smfd_models.losses',
    'smfd_models.metrics',
    'smfd_models.smfd_model',
    'smfd_models.mask_generator_model',
)


def prepare_basicsr():
    """Register the ``functional_tensor`` stand-in (must run before ``import basicsr``)."""
    if _FUNCTIONAL_TENSOR in sys.modules:
        return
    try:
        importlib.import_module(_FUNCTIONAL_TENSOR)
        return
    except ImportError:
        pass
    import types

    from torchvision.transforms import functional
    shim = types.ModuleType(_FUNCTIONAL_TENSOR, 'Stand-in installed by smfd_basicsr for basicsr 1.4.2.')
    shim.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[_FUNCTIONAL_TENSOR] = shim


def after_basicsr():
    """Patch basicsr, then import every registering module; one broken module does not stop the others."""
    from smfd_basicsr import patches
    patches.apply()
    failures = []
    for name in REGISTERING_MODULES:
        try:
            importlib.import_module(name)
        except Exception as error:
            failures.append(f'{name}: {type(error).__name__}: {error}')
    if failures:
        raise ImportError('; '.join(failures))


def register():
    """Import basicsr (prepared) and SMFD's packages so every SMFD name is in BasicSR's registries.

    Safe to call any number of times; the project entries call it explicitly so they work with the hook disabled.
    """
    prepare_basicsr()
    import basicsr  # noqa: F401  (fires the start-up hook when it is installed and basicsr is not imported yet)
    after_basicsr()
