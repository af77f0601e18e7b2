from .class_stratified_subset import ClassStratifiedSubset
from .global_index_concat_dataset import GlobalIndexConcatDataset
from .local_cifar import LocalCIFAR100

__all__ = [
    'ClassStratifiedSubset', 'GlobalIndexConcatDataset', 'LocalCIFAR100'
]
