from .lsskd import LSSKD
from .pskd import PSKD

__all__ = ['LSSKD', 'PSKD']
