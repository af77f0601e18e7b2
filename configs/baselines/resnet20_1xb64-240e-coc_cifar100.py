# Baseline with Cutout and CutMix ("COC", the LSSKD paper's Table III):
# Cutout in the pipeline, CutMix (alpha 1) on half of the batches, as the
# CutMix paper trains CIFAR. CutMix is set where mmpretrain's recipes set
# it, the classifier's train_cfg; its mixed labels reach the head as
# scores, hence the soft cross-entropy.
_base_ = [
    '../_base_/models/cifar100/resnet20.py',
    '../_base_/datasets/cifar100_bs64_cutout.py',
    '../_base_/schedules/cifar100_bs64_240e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    head=dict(loss=dict(use_soft=True)),
    train_cfg=dict(augments=[dict(type='CutMix', alpha=1.0)], probs=[0.5]))
