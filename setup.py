import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup


def readme() -> str:
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def version() -> str:
    scope: dict = {}
    with open('mmlsskd/version.py', encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension() -> None:
    """Put the configs, tools and model index under ``mmlsskd/.mim``, as
    OpenMMLab packages do, so that ``mim train/test/search mmlsskd`` and
    ``mmlsskd::`` config inheritance find them in an installed package:
    links for an editable install, copies for a built one."""
    if any(cmd in sys.argv for cmd in ('develop', 'editable_wheel')):
        mode = 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'build',
                                         'install')):
        mode = 'copy'
    else:
        return
    root = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(root, 'mmlsskd', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        src, dst = osp.join(root, name), osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


EXPORT_REQUIRES = ['onnx>=1.16', 'onnxruntime>=1.17', 'onnxscript>=0.2']

add_mim_extension()
setup(
    name='mmlsskd',
    version=version(),
    description='Layered Self-Supervised Knowledge Distillation (LSSKD) '
    'for the OpenMMLab runner',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.8',
    # Ranges an existing OpenMMLab 2.x environment satisfies; CI pins the
    # tested combination in requirements/ci.txt. mmpretrain and mmrazor do
    # not declare mmengine/mmcv in their plain requirements, so we do, but
    # mmcv only as an extra: `mmcv` and `mmcv-lite` install the same package
    # directory, and forcing the lite one onto a full mmcv would clobber it.
    install_requires=[
        'torch>=1.13',
        'torchvision',
        'mmengine>=0.8.0,<1.0.0',
        'mmpretrain>=1.0.0,<1.3.0',
        'mmrazor>=1.0.0,<1.1.0',
        'joblib',  # imported by mmrazor without being declared
        'numpy',
        'setuptools<81',  # mmengine's mmpretrain:: configs need pkg_resources
    ],
    extras_require=dict(
        lite=['mmcv-lite>=2.0.0,<=2.1.0'],  # for environments without mmcv
        # ONNX export of the student (tools/deployment/export_student.py)
        export=EXPORT_REQUIRES,
        # pytest-xdist: the suite runs on every core (setup.cfg's addopts)
        tests=['pytest>=7', 'pytest-xdist>=3'] + EXPORT_REQUIRES,
    ),
    author='The mmlsskd Authors',
    keywords='knowledge distillation, self-supervised, image classification, '
    'openmmlab',
    license='Apache-2.0',  # an SPDX expression (PEP 639)
    license_files=['LICENSE'],
    package_data={'mmlsskd': ['py.typed', '.mim/**/*', '.mim/*']},
    include_package_data=False,
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
