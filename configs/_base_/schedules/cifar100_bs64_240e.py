# The LSSKD/HSSAKD CIFAR schedule: 240 epochs, SGD lr 0.05, Nesterov
# momentum 0.9 (as both reference codes),
# weight decay 5e-4, lr x0.1 at epochs 150/180/210, batch 64.
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# Batch 64 on one GPU; --auto-scale-lr scales lr for other batch sizes.
auto_scale_lr = dict(base_batch_size=64)
