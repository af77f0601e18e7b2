# Baseline: label smoothing (0.1) under the same schedule.
_base_ = ['./resnet101_1xb64-240e_cifar100.py']

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='LabelSmoothLoss',
            label_smooth_val=0.1,
            loss_weight=1.0)))
