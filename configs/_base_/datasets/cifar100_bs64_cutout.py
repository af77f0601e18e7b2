# CIFAR-100 as cifar100_bs64.py, with Cutout after the crop and flip: one
# 8x8 hole per image, filled with the mean pixel (0 once normalised), the
# Cutout paper's CIFAR-100 setting (DeVries & Taylor, 2017). mmpretrain's
# Cutout transform; it draws the hole's centre anywhere in the image and
# clips the hole at the border, as the paper's code does.
_base_ = ['./cifar100_bs64.py']

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Cutout', shape=8, pad_val=(129, 124, 112), prob=1.0),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
