"""BasicSR integration: the start-up import hook, the patches of BasicSR's stock entries, option-file checks and
the ``smfd-train`` / ``smfd-test`` entries.

Imported at every interpreter start by ``smfd_autoload.pth`` (through ``smfd_basicsr.autoload``), so this package
and its ``autoload`` and ``registration`` modules import nothing but the standard library at module level.
"""
from smfd_basicsr.registration import prepare_basicsr, register

__all__ = ['prepare_basicsr', 'register']
