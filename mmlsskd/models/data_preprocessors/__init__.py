from .batched_cls_data_preprocessor import BatchedClsDataPreprocessor

__all__ = ['BatchedClsDataPreprocessor']
