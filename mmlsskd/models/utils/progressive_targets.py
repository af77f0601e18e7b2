import torch
import torch.nn.functional as F


def progressive_targets(labels: torch.Tensor, num_classes: int,
                        past_probs: torch.Tensor,
                        past_weight: torch.Tensor) -> torch.Tensor:
    """Soft targets that mix the label with a past prediction (PS-KD).

    ``target = (1 - a) * onehot(label) + a * past_prob`` per row, with
    ``a = alpha_t`` where a past prediction exists and ``a = 0`` where none
    does (the first epoch), see Kim et al., ICCV 2021.

    Args:
        labels (torch.Tensor): Hard labels of shape (N, ).
        num_classes (int): Number of classes of the one-hot part.
        past_probs (torch.Tensor): Past predicted distributions, (N, C).
        past_weight (torch.Tensor): The per-row weight ``a`` of the past
            prediction, shape (N, ), in [0, 1].

    Returns:
        torch.Tensor: Targets of shape (N, C); every row sums to 1.
    """
    onehot = F.one_hot(labels, num_classes).to(past_probs.dtype)
    weight = past_weight.to(past_probs.dtype).unsqueeze(1)
    return torch.lerp(onehot, past_probs, weight)
