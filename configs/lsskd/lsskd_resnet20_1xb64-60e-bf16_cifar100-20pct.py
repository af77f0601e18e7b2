# LSSKD in the CIFAR-100 CPU study's regime (the data, schedule, precision
# and seed of ../baselines/resnet20_1xb64-60e-bf16_cifar100-20pct.py),
# channels-last as the study trains it.
_base_ = ['./lsskd_resnet20_1xb64-240e_cifar100.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassStratifiedSubset',
        fraction=0.2,
        seed=0,
        dataset=_base_.train_dataloader.dataset))
param_scheduler = dict(milestones=[38, 45, 52])
train_cfg = dict(max_epochs=60, val_interval=4)
optim_wrapper = dict(type='BF16AmpOptimWrapper')
randomness = dict(seed=0)
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=1, save_best=None))
# Every auxiliary classifier is followed on the test set too.
model = dict(channels_last=True, evaluate_branches=True)
val_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='BranchAccuracy'),
]
test_evaluator = val_evaluator
