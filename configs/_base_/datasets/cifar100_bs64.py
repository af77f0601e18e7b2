# CIFAR-100 as the LSSKD paper trains it: batch 64 on one GPU,
# RandomCrop(32, pad 4) + horizontal flip (mmpretrain's CIFAR-100 pipeline),
# top-1 and top-5 on the 10,000 test images.
# Batches reach the model stacked (default_collate) and their labels move
# to the device as one tensor (BatchedClsDataPreprocessor): no step does
# work per image (docs/gpu.md).
_base_ = ['mmpretrain::_base_/datasets/cifar100_bs16.py']

data_preprocessor = dict(type='BatchedClsDataPreprocessor')
train_dataloader = dict(
    batch_size=64, num_workers=2, collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=64, num_workers=2, collate_fn=dict(type='default_collate'))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
