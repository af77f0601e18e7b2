from .class_stratified_subset import ClassStratifiedSubset
from .local_cifar import LocalCIFAR100

__all__ = ['ClassStratifiedSubset', 'LocalCIFAR100']
