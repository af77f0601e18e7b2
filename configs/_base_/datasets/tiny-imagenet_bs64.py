# Tiny-ImageNet (200 classes, 64x64, 100,000 training and 10,000 validation
# images) read from image folders, as HSSAKD trains it: RandomCrop(64, pad 4)
# + horizontal flip, batch 64.
#
# data/tiny-imagenet-200/train/<wnid>/images/*.JPEG is the official layout.
# The official val/ folder keeps all images in one directory with
# val_annotations.txt; move each image into val/<wnid>/ first, e.g.
#   cd data/tiny-imagenet-200/val && while read f w _; do
#     mkdir -p $w && mv images/$f $w/; done < val_annotations.txt
# Batches reach the model stacked (default_collate) and their labels move
# to the device as one tensor (BatchedClsDataPreprocessor).
dataset_type = 'CustomDataset'
data_preprocessor = dict(
    type='BatchedClsDataPreprocessor',
    num_classes=200,
    # ImageNet mean and std, RGB
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=64, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root='data/tiny-imagenet-200',
        data_prefix='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root='data/tiny-imagenet-200',
        data_prefix='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
