from .lsskd import LSSKD

__all__ = ['LSSKD']
