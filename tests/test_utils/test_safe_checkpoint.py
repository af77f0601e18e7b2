import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub


class Payload:
    """Pickles as ``getattr`` of a HistoryBuffer attribute that is not one of
    its statistics methods (the class itself is allow-listed)."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, 'update')


def test_mmengine_message_hub_loads_with_weights_only(tmp_path):
    hub = MessageHub.get_instance('safe_checkpoint_test')
    hub.update_scalar('train/loss', 1.5)
    torch.save({'message_hub': hub.state_dict()}, tmp_path / 'ok.pth')
    loaded = torch.load(tmp_path / 'ok.pth', weights_only=True)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.current() == 1.5


def test_other_getattr_calls_are_still_refused(tmp_path):
    torch.save({'x': Payload()}, tmp_path / 'bad.pth')
    with pytest.raises(pickle.UnpicklingError, match='Refusing getattr'):
        torch.load(tmp_path / 'bad.pth', weights_only=True)


def test_arbitrary_globals_are_still_refused(tmp_path):
    torch.save({'x': print}, tmp_path / 'bad.pth')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / 'bad.pth', weights_only=True)
