import pytest
import torch

from mmlsskd.models import RotationViews


def test_views_are_view_major_rotations():
    x = torch.arange(2 * 1 * 2 * 2, dtype=torch.float).reshape(2, 1, 2, 2)
    views = RotationViews()(x)
    assert views.shape == (8, 1, 2, 2)
    # Image 0 is [[0, 1], [2, 3]]; rot90 counter-clockwise is [[1, 3], [0, 2]].
    assert torch.equal(views[0], x[0])
    assert torch.equal(views[1], x[1])
    assert views[2, 0].tolist() == [[1., 3.], [0., 2.]]
    assert views[4, 0].tolist() == [[3., 2.], [1., 0.]]  # 180 degrees
    assert views[6, 0].tolist() == [[2., 0.], [3., 1.]]  # 270 degrees


def test_joint_labels_by_hand():
    labels = torch.tensor([0, 3, 2])
    joint = RotationViews().joint_labels(labels)
    # Row k * B + i holds y_i * 4 + k.
    assert joint.tolist() == [0, 12, 8, 1, 13, 9, 2, 14, 10, 3, 15, 11]


def test_two_views():
    views = RotationViews(angles=(0, 180))
    assert views.num_views == 2
    assert views.joint_labels(torch.tensor([1, 4])).tolist() == [2, 8, 3, 9]
    # 180 degrees keeps a non-square shape.
    assert views(torch.zeros(1, 3, 4, 6)).shape == (2, 3, 4, 6)


def test_non_square_input_with_quarter_turns_is_rejected():
    with pytest.raises(ValueError, match='square'):
        RotationViews()(torch.zeros(2, 3, 32, 48))


@pytest.mark.parametrize('angles', [(90, 0), (0, 45), (0, 90, 450), ()])
def test_bad_angles_are_rejected(angles):
    with pytest.raises(ValueError, match='angles'):
        RotationViews(angles=angles)


def test_class_probabilities_average_each_images_views_by_hand():
    """Image b's class distribution is the mean over views k of the
    softmax of row k * B + b's entries c * K + k."""
    views, batch, classes = RotationViews(), 3, 5
    k = views.num_views
    joint = torch.randn(k * batch, classes * k)
    got = views.class_probabilities(joint, batch)
    for b in range(batch):
        expected = sum(joint[v * batch + b, v::k].softmax(0)
                       for v in range(k)) / k
        torch.testing.assert_close(got[b], expected)


def test_an_angle_past_a_full_turn_is_its_quarter_turns_modulo_four():
    """450 degrees is one quarter turn, as 90 is."""
    views = RotationViews(angles=(0, 450))
    x = torch.arange(4, dtype=torch.float).reshape(1, 1, 2, 2)
    assert views.quarter_turns == [0, 1]
    assert torch.equal(views(x)[1], torch.rot90(x[0], 1, (1, 2)))
