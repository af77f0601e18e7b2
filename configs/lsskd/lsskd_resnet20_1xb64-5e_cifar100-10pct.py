# A first LSSKD run that finishes on a laptop CPU: ResNet-20 on 10 % of
# every CIFAR-100 class (a fixed stratified draw, 5,000 images), 5 epochs
# of the paper's schedule compressed (lr x0.1 at epochs 3 and 4), the
# 10,000 test images evaluated once, at the end. Not a result: it shows the
# whole pipeline train, checkpoint and evaluate (the Runner's last lines
# print the test top-1, far above the 1 % of chance).
_base_ = ['./lsskd_resnet20_1xb64-240e_cifar100.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassStratifiedSubset',
        fraction=0.1,
        seed=0,
        dataset=_base_.train_dataloader.dataset))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[3, 4], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=5)
# The last checkpoint is all a first run needs.
default_hooks = dict(checkpoint=dict(max_keep_ckpts=1, save_best=None))
