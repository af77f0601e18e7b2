# LSSKD's training-time parts and their defaults. A config wraps its
# classifier with
#   model = dict(_base_.lsskd, _delete_=True, architecture=_base_.model,
#                out_indices=<every stage>)
# (leave out_indices out and LSSKD picks the stages: docs/mixing.md)
# The loss weights are the project's choices (the paper's were lost from
# its text): see docs/configs.md, "Defaults where the paper is silent".
lsskd = dict(
    type='LSSKD',
    view_transform=dict(type='RotationViews', angles=(0, 90, 180, 270)),
    aux_neck=dict(type='AuxiliaryBranchNeck', input_size=32),
    aux_head=dict(
        type='RotationJointHead',
        loss_hier=dict(
            type='CrossEntropyLoss', use_soft=True, loss_weight=1.0),
        loss_kl=dict(type='mmrazor.KLDivergence', tau=3.0, loss_weight=1.0),
        hierarchical_softening=True),
    loss_cls=dict(type='CrossEntropyLoss', use_soft=True, loss_weight=1.0),
    loss_feat=dict(type='mmrazor.L2Loss', normalize=False, loss_weight=0.01))

# PastPredictionHook keeps last epoch's predictions and sets
# alpha_t = alpha_T * (epoch + 1) / max_epochs (PS-KD's code; epoch 0 has no
# past prediction and trains on the labels); EpochSeedHook seeds every epoch
# from (seed, epoch), so that --resume continues exactly.
custom_hooks = [
    dict(type='PastPredictionHook', alpha_T=0.8),
    dict(type='EpochSeedHook')
]
