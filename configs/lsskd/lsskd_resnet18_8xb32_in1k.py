# LSSKD with ResNet-18 on ImageNet-1k, HSSAKD's ImageNet schedule as
# mmpretrain ships it: SGD lr 0.1, momentum 0.9, weight decay 1e-4,
# 100 epochs, lr x0.1 at epochs 30/60/90, batch 256 (8 GPUs x 32).
_base_ = [
    'mmpretrain::resnet/resnet18_8xb32_in1k.py',
    '../_base_/methods/lsskd.py',
]

custom_imports = dict(imports=['mmlsskd'], allow_failed_imports=False)
# Every checkpoint holds the store (3.3 GB with it, docs/cost.md): keep the
# last three epochs and the best, not all 100 as the base recipe does.
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook', max_keep_ckpts=3, save_best='auto'))

model = dict(
    _base_.lsskd,
    _delete_=True,
    architecture=_base_.model,
    out_indices=(0, 1, 2, 3),
    aux_neck=dict(type='AuxiliaryBranchNeck', input_size=224))

# A dense fp32 store would hold 310 GB per rank for 1.28 M images; float16
# top-32 rows hold about 2.6 GB (tools/benchmarks/past_prediction_store.py).
custom_hooks = [
    dict(
        type='PastPredictionHook',
        alpha_T=0.8,
        store=dict(dtype='float16', topk=32)),
    dict(type='EpochSeedHook')
]

val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
