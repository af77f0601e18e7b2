"""Top-level config keys that nothing reads but that look like one that
is read: a likely misspelling, which mmengine silently ignores."""
import difflib
import inspect
from typing import List, Tuple

# What mmengine's Runner reads beyond its constructor's arguments, and what
# the tools (train, test) and mmengine's config loading read.
OTHER_READ_KEYS = ('compile', 'model_wrapper_cfg', 'runner_type',
                   'custom_imports', 'tta_model', 'tta_pipeline', 'strategy',
                   '_base_')
# Helper variables OpenMMLab's configs conventionally define and reuse
# below: never a misspelling ('test_pipeline' is as close to the read
# 'tta_pipeline' as 'trian_cfg' is to 'train_cfg').
HELPER_VARIABLES = ('train_pipeline', 'val_pipeline', 'test_pipeline',
                    'dataset_type', 'data_root', 'vis_backends',
                    'backend_args', 'file_client_args', 'bgr_mean', 'bgr_std',
                    'norm_cfg')
# How alike a key must be to a read one to be taken for its misspelling
# (difflib's ratio): 'custom_hook' and 'train_cfgs' are 0.96, 'defualt_hooks'
# 0.92, 'trian_cfg' 0.89; the shipped configs' own helpers ('lsskd',
# 'data_root') are far below it.
NEAR_MISS = 0.85


def read_keys() -> Tuple[str, ...]:
    """The top-level keys the Runner, the tools or this package read."""
    from mmengine.runner import Runner
    parameters = inspect.signature(Runner.__init__).parameters
    runner_args = tuple(p for p in parameters if p not in ('self', 'cfg'))
    return runner_args + OTHER_READ_KEYS


def near_misses(keys) -> List[Tuple[str, str]]:
    """``(key, the read key it resembles)`` for every key of ``keys`` that
    nothing reads and that is a near miss of one that is read."""
    known = read_keys()
    misses = []
    for key in keys:
        if key in known or key in HELPER_VARIABLES:
            continue
        match = difflib.get_close_matches(key, known, n=1, cutoff=NEAR_MISS)
        if match:
            misses.append((key, match[0]))
    return misses


def unread_setting_warnings(cfg) -> List[str]:
    """One warning per near-miss top-level key of ``cfg``, naming the key
    it resembles: mmengine ignores a key it does not read, so the run would
    go on with settings the user did not choose."""
    return [
        f'config: top-level key {key!r} is read by nothing and looks like '
        f'{known!r}, which is: it is ignored, and the run uses '
        f'{known!r} as the base configs set it. Rename it to {known!r} if '
        f'that is what you meant.' for key, known in near_misses(cfg.keys())
    ]
