# mmpretrain's runtime, plus the import that registers mmlsskd's components
# (CIFAR backbones, LSSKD, PS-KD, the past-prediction hook), checkpoints
# written so that an interrupted write never loses the previous one, and the
# loss scalars read from the GPU once per logging window (the same logged
# numbers as mmengine's RuntimeInfoHook, without a wait in every step).
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['mmlsskd'], allow_failed_imports=False)

default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook'),
    runtime_info=dict(type='BatchedRuntimeInfoHook'))
