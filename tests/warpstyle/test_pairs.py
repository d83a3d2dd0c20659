import torch

from adain.base.encoder.vgg import VGGEncoder
from tests.train_fixtures import make_image_folder
from warpstyle.training.data.pairs import MinedPairs, nearest_pairs


def test_nearest_pairs_known_answer():
    desc = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=1)
    pairs = nearest_pairs(desc, k=1, max_similarity=0.999)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 0), (2, 3), (3, 2)]
    assert all(0 < s < 1 for _, _, s in pairs)


def test_near_duplicates_and_self_are_skipped():
    desc = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    pairs = nearest_pairs(desc, k=2, max_similarity=0.95)
    assert (0, 1) not in [(i, j) for i, j, _ in pairs]  # duplicates
    assert all(i != j for i, j, _ in pairs)


def test_mined_pairs_are_cached_deterministic_and_split(tmp_path):
    a = make_image_folder(tmp_path / "a", count=5, seed=1)  # holds one corrupt file
    b = make_image_folder(tmp_path / "b", count=4, seed=2, corrupt=False)
    enc = VGGEncoder()  # random weights suffice for the mechanics
    first = MinedPairs([a, b], enc, cache_dir=tmp_path / "cache", k=2, split="all", size=32, max_similarity=1.01)
    assert len(list((tmp_path / "cache").glob("pairs_*.npz"))) == 1
    again = MinedPairs([a, b], enc, cache_dir=tmp_path / "cache", k=2, split="all", size=32, max_similarity=1.01)
    assert (first.pairs == again.pairs).all()
    other = VGGEncoder()  # another VGG (--vgg): its descriptors must not come from the first one's cache
    MinedPairs([a, b], other, cache_dir=tmp_path / "cache", k=2, split="all", size=32, max_similarity=1.01)
    assert len(list((tmp_path / "cache").glob("pairs_*.npz"))) == 2
    assert len(first) > 0
    c, g = first[0]
    assert c.shape == g.shape == (3, 32, 32) and c.dtype == torch.uint8
    names = {p.name for i in range(len(first)) for p in first.describe(i)[:2]}
    assert "corrupt.jpg" not in names
    train = MinedPairs([a, b], enc, cache_dir=tmp_path / "cache", k=2, split="train", holdout=0.3, size=32, max_similarity=1.01)
    held = MinedPairs([a, b], enc, cache_dir=tmp_path / "cache", k=2, split="heldout", holdout=0.3, size=32, max_similarity=1.01)
    assert not set(train.paths) & set(held.paths)


def test_encoder_fingerprint_covers_weights_and_layout():
    from warpstyle.training.data.pairs import encoder_fingerprint

    a = VGGEncoder()
    b = VGGEncoder("adain")
    b.load_state_dict(a.state_dict())
    assert encoder_fingerprint(a) == encoder_fingerprint(a)
    assert encoder_fingerprint(a) != encoder_fingerprint(b)  # same weights, another layout
