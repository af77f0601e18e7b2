# mmpretrain's runtime, plus the import that registers mmlsskd's components
# (CIFAR backbones, LSSKD, PS-KD, the past-prediction hook).
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['mmlsskd'], allow_failed_imports=False)
