# mmpretrain's runtime, plus the import that registers mmlsskd's components
# (CIFAR backbones, LSSKD, PS-KD, the past-prediction hook), checkpoints
# written so that an interrupted write never loses the previous one, and the
# loss scalars read from the GPU once per logging window (the same logged
# numbers as mmengine's RuntimeInfoHook, without a wait in every step).
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['mmlsskd'], allow_failed_imports=False)

# Checkpoints hold the store (1.2 GB for CIFAR-100 with dense rows): keep
# the last three epochs and the best evaluation, not every epoch.
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook', max_keep_ckpts=3, save_best='auto'),
    runtime_info=dict(type='BatchedRuntimeInfoHook'))
