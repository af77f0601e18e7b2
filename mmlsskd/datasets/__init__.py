from .local_cifar import LocalCIFAR100

__all__ = ['LocalCIFAR100']
