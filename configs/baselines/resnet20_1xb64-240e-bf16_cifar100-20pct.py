# Cross-entropy in the CIFAR-100 CPU study's regime (see
# ./resnet20_1xb64-60e-bf16_cifar100-20pct.py) trained four times as long:
# 240 epochs, the paper's own schedule (lr x0.1 at epochs 150, 180 and
# 210), the test set every 8 epochs. As many images pass through the
# backbone as in LSSKD's 60 epochs of four rotated views: the study's
# compute-matched baseline.
_base_ = ['./resnet20_1xb64-60e-bf16_cifar100-20pct.py']

param_scheduler = dict(milestones=[150, 180, 210])
train_cfg = dict(max_epochs=240, val_interval=8)
