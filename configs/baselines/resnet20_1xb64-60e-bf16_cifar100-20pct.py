# The regime of the CIFAR-100 CPU study (docs/results.md), as a config: the
# shipped ResNet-20 cross-entropy recipe on a fixed stratified 20 % of every
# class (10,000 images, drawn with seed 0), 60 epochs of the paper's schedule
# compressed (lr x0.1 at epochs 38, 45 and 52), trained in bfloat16 (a GPU,
# or a CPU with AMX: tools/train.py refuses it on a CPU without native
# bfloat16), the full test set every 4 epochs. It is the study's seed 0; seed
# s is `--cfg-options randomness.seed=s train_dataloader.dataset.seed=s`.
# `tests/test_tools/test_study_configs.py` keeps it equal to what
# `tools/benchmarks/cifar100_cpu_study.py` trains.
_base_ = ['./resnet20_1xb64-240e_cifar100.py']

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
# Every epoch's checkpoint, the latest kept, and each epoch reseeded, so that
# a stopped run resumes exactly; no "best" checkpoint, which here would be
# chosen on the test set.
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=1, save_best=None))
custom_hooks = [dict(type='EpochSeedHook')]
