import pickle

import pytest
import torch
from conftest import serving
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


class RunsCode:
    """Unpickles as a call that leaves a file behind."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


def test_downloaded_checkpoints_load_weights_only(tmp_path, monkeypatch):
    """mmengine fetches URLs with torch.hub, whose weights_only defaults to
    False; with mmlsskd imported a download is as safe as a local file."""
    import mmlsskd  # noqa: F401
    from mmengine.runner import CheckpointLoader
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    served = tmp_path / 'served'
    served.mkdir()
    torch.save({'state_dict': {'w': torch.ones(2)}}, served / 'good.pth')
    marker = tmp_path / 'code_ran'
    torch.save({'state_dict': {'w': RunsCode(marker)}}, served / 'evil.pth')
    with serving(served) as url:
        good = CheckpointLoader.load_checkpoint(f'{url}/good.pth')
        assert torch.equal(good['state_dict']['w'], torch.ones(2))
        with pytest.raises(pickle.UnpicklingError):
            CheckpointLoader.load_checkpoint(f'{url}/evil.pth')
    assert not marker.exists()
