# Label smoothing (0.1) in the CIFAR-100 CPU study's regime (see
# ./resnet20_1xb64-60e-bf16_cifar100-20pct.py).
_base_ = ['./resnet20_1xb64-60e-bf16_cifar100-20pct.py']

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='LabelSmoothLoss',
            label_smooth_val=0.1,
            loss_weight=1.0)))
