# PS-KD (Kim et al., ICCV 2021): progressive soft targets on the final
# classifier. A config wraps its classifier with
#   model = dict(_base_.pskd, _delete_=True, architecture=_base_.model)
pskd = dict(
    type='PSKD',
    loss_cls=dict(type='CrossEntropyLoss', use_soft=True, loss_weight=1.0))

# PastPredictionHook keeps last epoch's predictions and sets
# alpha_t = alpha_T * (epoch + 1) / max_epochs (PS-KD's code; epoch 0 has no
# past prediction and trains on the labels); EpochSeedHook seeds every epoch
# from (seed, epoch), so that --resume continues exactly.
custom_hooks = [
    dict(type='PastPredictionHook', alpha_T=0.8),
    dict(type='EpochSeedHook')
]
