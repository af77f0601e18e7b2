# CIFAR-100 as the LSSKD paper trains it: batch 64 on one GPU,
# RandomCrop(32, pad 4) + horizontal flip (mmpretrain's CIFAR-100 pipeline),
# top-1 and top-5 on the 10,000 test images.
_base_ = ['mmpretrain::_base_/datasets/cifar100_bs16.py']

train_dataloader = dict(batch_size=64, num_workers=2)
val_dataloader = dict(batch_size=64, num_workers=2)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
