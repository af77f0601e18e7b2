"""The official HSSAKD code's training steps, run beside ours.

The benchmarks that compare with the official code (winycg/HSAKD) take the
path of a checkout (``--hsakd PATH``); its ``models`` package is imported
from there and never copied here. Two steps, as its training scripts run
them (the per-step accuracy bookkeeping left out, as ours logs in windows):

- ``plain``: ``train_baseline_cifar.py``'s step, cross-entropy on the batch;
- ``4 views``: ``train_teacher_cifar.py``'s step, the batch in four
  rotations through the ``*_aux`` network, a cross-entropy on the joint
  labels per joint-label classifier (one after every stage) and one on the
  unrotated views. This is the arithmetic of an LSSKD step (HSSAKD's
  self-supervised teacher): four views through the backbone plus the
  branches.
"""
import sys

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

PLAIN = 'official HSSAKD: plain'
VIEWS = 'official HSSAKD: 4 views + 3 joint-label heads'
# Our students' names (configs/*/*_{model}_*.py) and the official code's
# network of each; ResNet_CIFAR-18 has no ``*_aux`` network there.
ARCHS = {'resnet20': 'resnet20', 'wrn16-2': 'wrn_16_2',
         'resnet8x4': 'resnet8x4'}
NUM_VIEWS = 4


def official_models(root: str):
    """The ``models`` package of the checkout at ``root``."""
    sys.path.insert(0, str(root))
    import models
    return models


def official_networks(root: str, model: str) -> dict:
    """``{step name: network}`` of the official code for our ``model``,
    on the GPU if there is one, in training mode."""
    if model not in ARCHS:
        raise SystemExit(f'The official HSSAKD code has no 4-view (_aux) '
                         f'network for {model}; compare one of '
                         f'{", ".join(ARCHS)}, or leave out --hsakd.')
    models = official_models(root)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    arch = ARCHS[model]
    return {
        name: getattr(models, arch)(num_classes=100).to(device).train()
        for name, arch in ((PLAIN, arch), (VIEWS, f'{arch}_aux'))
    }


def rotated(inputs: torch.Tensor, target: torch.Tensor) -> tuple:
    """The batch in its four quarter turns, sample-major as the official
    code stacks them, with their joint labels."""
    size = inputs.shape[1:]
    inputs = torch.stack([torch.rot90(inputs, k, (2, 3))
                          for k in range(NUM_VIEWS)], 1).view(-1, *size)
    labels = torch.stack([target * NUM_VIEWS + k for k in range(NUM_VIEWS)],
                         1).view(-1)
    return inputs, labels


def official_steps(root: str, batch_size: int,
                   model: str = 'resnet20') -> dict:
    """``{name: step}``: the official code's training steps of ``model`` on
    a random batch of ``batch_size`` uint8 CIFAR images, each with the
    official SGD settings."""
    networks = official_networks(root, model)
    device = next(networks[PLAIN].parameters()).device
    images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8)
    targets = torch.randint(0, 100, (batch_size, ))

    def plain_step(net, optimizer):
        inputs, target = images.float().to(device), targets.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(net(inputs), target)
        loss.backward()
        optimizer.step()

    def views_step(net, optimizer):
        inputs, target = images.float().to(device), targets.to(device)
        inputs, labels = rotated(inputs, target)
        optimizer.zero_grad()
        logits, ss_logits = net(inputs, grad=True)
        loss = sum(F.cross_entropy(x, labels) for x in ss_logits)
        loss = loss + F.cross_entropy(logits[0::NUM_VIEWS], target)
        loss.backward()
        optimizer.step()

    steps = {}
    for name, step in ((PLAIN, plain_step), (VIEWS, views_step)):
        net = networks[name]
        optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9,
                                    weight_decay=5e-4, nesterov=True)
        steps[name] = (lambda n=net, o=optimizer, s=step: s(n, o))
    return steps


def official_flop_ratio(root: str, model: str) -> float:
    """FLOPs of the official 4-view training forward over those of its
    plain forward, counted by torch's ``FlopCounterMode`` on one image."""
    networks = official_networks(root, model)
    image = torch.zeros(1, 3, 32, 32,
                        device=next(networks[PLAIN].parameters()).device)
    flops = {}
    for name, inputs, kwargs in (
            (PLAIN, image, {}),
            (VIEWS, rotated(image, torch.zeros(1, dtype=torch.long))[0],
             dict(grad=True))):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            networks[name](inputs, **kwargs)
        flops[name] = counter.get_total_flops()
    return flops[VIEWS] / flops[PLAIN]


def command_line(script: str) -> str:
    """This run's command as a record keeps it: the checkout's path left
    out, it is the user's."""
    words = sys.argv[1:]
    if '--hsakd' in words:
        words[words.index('--hsakd') + 1] = 'PATH/TO/HSAKD'
    return ' '.join([f'python {script}', *words])
