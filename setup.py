"""SMFD: semantic-mask-guided face deblurring (SMFD-UNet) as a BasicSR plugin.

Besides the packages, the wheel carries ``smfd_autoload.pth`` at its root, which site-packages runs at
interpreter start: it installs the lazy import hook of ``smfd_basicsr.autoload`` (see that module). The version is a
literal here: no generated version file.
"""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
PTH = 'smfd_autoload.pth'


class BuildPyWithPth(build_py):
    """Regular wheels: put the startup file next to the packages (the root of site-packages)."""

    def run(self):
        super().run()
        shutil.copy(HERE / PTH, Path(self.build_lib) / PTH)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [str(Path(self.build_lib) / PTH)]


cmdclass = {'build_py': BuildPyWithPth}

try:  # editable installs (PEP 660) build their wheel elsewhere: add the startup file to it too
    from setuptools.command.editable_wheel import editable_wheel

    class EditableWheelWithPth(editable_wheel):

        def _install_namespaces(self, installation_dir, pth_prefix):
            super()._install_namespaces(installation_dir, pth_prefix)
            shutil.copy(HERE / PTH, Path(installation_dir) / PTH)

    cmdclass['editable_wheel'] = EditableWheelWithPth
except ImportError:  # old setuptools: `pip install .` still works
    pass

setup(
    name='smfd',
    version='0.1.0',
    description='SMFD-UNet: semantic-mask-guided face deblurring, as a BasicSR plugin',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8') if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9,<3.13',
    packages=find_packages(include=['smfd_*']),
    install_requires=[
        'basicsr==1.4.2',  # provides tensorboard through its tb-nightly requirement: do not add `tensorboard`
        'torch>=2.1',
        'torchvision>=0.16',
        'opencv-python>=4.8,<5',  # 5.0 dropped APIs that face tools use
        'numpy',
        'scipy',
        'lmdb',
        'pyyaml',
        'lpips',
        'facexlib',
        'tqdm',
    ],
    extras_require={'onnx': ['onnx', 'onnxruntime'], 'web': ['gradio']},
    entry_points={
        'console_scripts': [
            'smfd-train=smfd_basicsr.train:main',
            'smfd-test=smfd_basicsr.test:main',
            'smfd-deblur=smfd_inference.deblur:main',
            'smfd-web=smfd_inference.web:main',
        ]
    },
    cmdclass=cmdclass,
    zip_safe=False,
)
