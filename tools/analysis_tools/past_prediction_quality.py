"""How good the past predictions in an LSSKD or PS-KD checkpoint are as
training targets.

PS-KD trains epoch t on ``(1 - alpha_t) * label + alpha_t * p``, where ``p``
is the sample's own prediction from the previous epoch; the method assumes
those predictions are mostly right. This tool reads the past-prediction
store saved in a checkpoint and compares the final classifier's stored
predictions with the training labels: their top-1 on the (augmented)
training images, the mean probability of the true class, and what the
progressive target built from them at ``alpha`` would be: its mass on the
true class and the share of targets whose largest entry is not the label.
For an LSSKD config with ``branch_target_weight`` (``beta``) the target
also mixes in the deepest branch's class distribution of the unrotated
view, ``(1 - beta) * progressive + beta * branch``, as training builds it;
the branch's prediction stored in the same epoch stands in for the one the
next step would compute.

Example::

    python tools/analysis_tools/past_prediction_quality.py \\
        configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py \\
        work_dirs/lsskd_resnet20/epoch_240.pth --alpha 0.8
"""
import argparse
import json
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, MODELS

import mmlsskd  # noqa: F401  (registers LSSKD's components)
from mmlsskd.engine import PastPredictionStore
from mmlsskd.engine.hooks.past_prediction_hook import CHECKPOINT_KEY
from mmlsskd.models.utils import progressive_targets
from mmlsskd.datasets.training_set_checks import indexed_dataset


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the config the checkpoint trained')
    parser.add_argument('checkpoint', help='a checkpoint with its store')
    parser.add_argument(
        '--alpha', type=float, default=None,
        help="the past prediction's weight in the target (default: the "
        "config's PastPredictionHook alpha_T, the last epoch's)")
    parser.add_argument('--out', default=None, help='also write JSON here')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='key=value overrides of the config')
    return parser.parse_args()


def past_prediction_hook(cfg: Config) -> dict:
    """The config's PastPredictionHook entry."""
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') in ('PastPredictionHook',
                                'mmlsskd.PastPredictionHook'):
            return hook
    raise SystemExit('The config has no PastPredictionHook: its checkpoints '
                     'keep no past predictions.')


def load_store(cfg: Config, algorithm, checkpoint: dict,
               num_samples: int) -> PastPredictionStore:
    """The checkpoint's store, sized as the config's ``algorithm`` built
    it in training."""
    if CHECKPOINT_KEY not in checkpoint:
        raise SystemExit(f'The checkpoint has no {CHECKPOINT_KEY!r}: it was '
                         f'not written by a PastPredictionHook run.')
    options = dict(past_prediction_hook(cfg).get('store') or {})
    options['device'] = 'cpu'
    store = PastPredictionStore(
        num_samples=num_samples,
        num_classes=algorithm.num_classes,
        num_views=getattr(algorithm, 'num_views', 1),
        num_branches=getattr(algorithm, 'num_branches', 0),
        **options)
    store.load_state_dict(checkpoint[CHECKPOINT_KEY], 'the checkpoint')
    return store


def target_quality(past: torch.Tensor,
                   labels: torch.Tensor,
                   alpha: float,
                   branch: Optional[torch.Tensor] = None,
                   beta: float = 0.) -> dict:
    """Figures of past predictions ``past`` (N, C) against ``labels`` (N, ),
    and of the targets ``(1 - alpha) * one_hot + alpha * past``, mixed with
    ``branch`` (N, C) as ``(1 - beta) * target + beta * branch`` when
    ``beta > 0``.

    Returns:
        dict: ``samples``, ``top1`` (%, argmax of ``past`` is the label),
        ``true_class_probability`` (mean), ``alpha``, ``beta``,
        ``target_true_mass`` (mean mass of the target on the label) and
        ``target_wrong`` (%, the target's largest entry is not the label;
        ties count as right).
    """
    past = past.double()
    targets = progressive_targets(labels, past.size(1), past,
                                  past.new_full((len(labels), ), alpha))
    if beta > 0:
        targets = torch.lerp(targets, branch.double(), beta)
    true = past.gather(1, labels[:, None]).squeeze(1)
    target_true = targets.gather(1, labels[:, None]).squeeze(1)
    target_others = targets.scatter(1, labels[:, None],
                                    float('-inf')).amax(1)
    return dict(
        samples=len(labels),
        top1=100.0 * float((past.argmax(1) == labels).double().mean()),
        true_class_probability=float(true.mean()),
        alpha=alpha,
        beta=beta,
        target_true_mass=float(target_true.mean()),
        target_wrong=100.0 * float(
            (target_others > target_true).double().mean()))


def unrotated_class_distribution(joint: torch.Tensor,
                                 view_transform) -> torch.Tensor:
    """A branch's class distribution of the unrotated view from its stored
    joint distribution (N, C * K) of that view.

    Training applies a softmax to the view's own joint logits
    (``view_transform.class_logits``); the log of the stored joint softmax
    differs from those logits by a constant per row, so the same selection
    and softmax give that distribution exactly.
    """
    log_joint = joint.double().log()
    return view_transform.class_logits(log_joint, len(joint), 1).softmax(1)


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    alpha = args.alpha if args.alpha is not None else \
        past_prediction_hook(cfg).get('alpha_T', 0.8)
    dataset = indexed_dataset(DATASETS.build(cfg.train_dataloader.dataset))
    labels = torch.tensor(
        [int(dataset.get_data_info(i)['gt_label'])
         for i in range(len(dataset))])
    checkpoint = torch.load(args.checkpoint, map_location='cpu',
                            weights_only=False)
    algorithm = MODELS.build(cfg.model)
    store = load_store(cfg, algorithm, checkpoint, len(dataset))
    # Rows of the last epoch that wrote any: what the next epoch reads.
    last = int(store.written_epoch.max())
    if last < 0:
        raise SystemExit('The store holds no prediction yet (the checkpoint '
                         'is from before the first epoch ended).')
    rows = store.written_epoch == last
    beta = float(cfg.model.get('branch_target_weight', 0.))
    branch = None
    if beta > 0:
        # The deepest branch's stored joint distribution of view 0.
        branch = unrotated_class_distribution(store.branches[-1, rows, 0],
                                              algorithm.view_transform)
    figures = dict(
        epoch_written=last + 1,
        **target_quality(store.final[rows], labels[rows], alpha, branch,
                         beta))
    target = f'(1 - {alpha:g}) * label + {alpha:g} * past prediction'
    if beta > 0:
        target = f'{1 - beta:g} * ({target}) + {beta:g} * deepest branch'
    print(f"Past predictions of epoch {figures['epoch_written']} "
          f"({figures['samples']} training samples):\n"
          f"  top-1 against the labels        {figures['top1']:6.2f} %\n"
          f"  mean true-class probability     "
          f"{figures['true_class_probability']:6.3f}\n"
          f"Targets {target}:\n"
          f"  mean mass on the true class     "
          f"{figures['target_true_mass']:6.3f}\n"
          f"  largest entry not the label     "
          f"{figures['target_wrong']:6.2f} %")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                           **figures), f, indent=1)
            f.write('\n')


if __name__ == '__main__':
    main()
