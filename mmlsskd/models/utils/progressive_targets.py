import torch


def progressive_targets(labels: torch.Tensor, num_classes: int,
                        past_probs: torch.Tensor,
                        past_weight: torch.Tensor) -> torch.Tensor:
    """Soft targets that mix the label with a past prediction (PS-KD).

    ``target = (1 - a) * onehot(label) + a * past_prob`` per row, with
    ``a = alpha_t`` where a past prediction exists and ``a = 0`` where none
    does (the first epoch), see Kim et al., ICCV 2021.

    Leading dimensions broadcast: the past predictions of several branches,
    (S, N, C), take one (N, ) set of labels and weights.

    Args:
        labels (torch.Tensor): Hard labels of shape (N, ).
        num_classes (int): Number of classes of the one-hot part.
        past_probs (torch.Tensor): Past predicted distributions, (..., N, C).
        past_weight (torch.Tensor): The per-row weight ``a`` of the past
            prediction, shape (N, ), in [0, 1].

    Returns:
        torch.Tensor: Targets of the shape of ``past_probs``; every row
        sums to 1.
    """
    if past_probs.size(-1) != num_classes:
        raise ValueError(f'past_probs has {past_probs.size(-1)} classes, '
                         f'the labels {num_classes}.')
    # Not F.one_hot: it reads the labels' range back from the device every
    # call (the range is checked on the host, before the step).
    onehot = torch.zeros(len(labels), num_classes, dtype=past_probs.dtype,
                         device=past_probs.device).scatter_(
                             1, labels.unsqueeze(1), 1)
    weight = past_weight.to(past_probs.dtype).unsqueeze(1)
    return torch.lerp(onehot, past_probs, weight)
