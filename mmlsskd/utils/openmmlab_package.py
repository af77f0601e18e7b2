"""Make the project's configs reachable the OpenMMLab way: ``mmlsskd::`` in
another config's ``_base_`` (mmengine), and lookup by name with
``mmpretrain.list_models`` / ``get_model``.

``setup.py`` puts ``configs/``, ``tools/`` and ``model-index.yml`` under
``mmlsskd/.mim`` (links in an editable install), where mim and mmengine
look for them.
"""
import os.path as osp

PACKAGE = 'mmlsskd'
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def resources_root() -> str:
    """The folder holding ``configs/``, ``tools/`` and ``model-index.yml``:
    the installed package's ``.mim``, else (a source checkout used without
    installing it) the checkout's root."""
    mim = osp.join(PACKAGE_DIR, '.mim')
    if osp.isfile(osp.join(mim, 'model-index.yml')):
        return mim
    return osp.dirname(PACKAGE_DIR)


def register_config_package() -> None:
    """Let configs inherit ``mmlsskd::<folder>/<config>.py``.

    mmengine accepts ``pkg::`` only for the packages of its own table, so
    mmlsskd adds itself. And mmengine finds a package's folder from its
    distribution's location, which for a PEP 660 editable install (the
    README's ``pip install -e``) is site-packages, where the package is
    not; for mmlsskd the imported package's folder is used instead.
    """
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils
    config_utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    installed_path = config_module.get_installed_path
    if getattr(installed_path, 'mmlsskd_aware', False):
        return

    def get_installed_path(package: str) -> str:
        if package == PACKAGE:
            return PACKAGE_DIR
        return installed_path(package)

    get_installed_path.mmlsskd_aware = True
    config_module.get_installed_path = get_installed_path


_model_index_registered = False


def register_model_index() -> None:
    """Add the shipped configs to mmpretrain's model hub, named after their
    files (``mmpretrain.list_models('*lsskd*')``)."""
    global _model_index_registered
    index = osp.join(resources_root(), 'model-index.yml')
    if _model_index_registered or not osp.isfile(index):
        return
    from mmpretrain.apis import ModelHub
    ModelHub.register_model_index(index, config_prefix=resources_root())
    _model_index_registered = True
