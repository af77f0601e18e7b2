# PS-KD (Kim et al., ICCV 2021): progressive soft targets on the final
# classifier. A config wraps its classifier with
#   model = dict(_base_.pskd, _delete_=True, architecture=_base_.model)
pskd = dict(
    type='PSKD',
    loss_cls=dict(type='CrossEntropyLoss', use_soft=True, loss_weight=1.0))

# Keeps last epoch's predictions; alpha_t = alpha_T * epoch / max_epochs.
custom_hooks = [dict(type='PastPredictionHook', alpha_T=0.8)]
