import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from adain.base.data import (
    InfiniteSampler,
    RandomCropFolder,
    infinite_loader,
    list_images,
    load_rgb_pil,
    random_resized_crop,
    split_paths,
)
from adain.base.errors import ImageError

NAMES = ["b.png", "a.png", "sub/c.png", "sub/deeper/d.PNG", "sub/e.jpg", "z.webp"]


def _take(sampler, k):
    return list(itertools.islice(iter(sampler), k))


# ---------------------------------------------------------------- listing and splitting


def test_list_images_recursive_sorted_by_extension(make_folder):
    root = make_folder(NAMES)
    (root / "notes.txt").write_text("x")
    (root / ".hidden.png").write_bytes(b"")
    paths = list_images(root)
    assert paths == sorted(paths)
    assert sorted(p.relative_to(root).as_posix() for p in paths) == sorted(NAMES)
    assert list_images(str(root)) == paths


def test_list_images_not_a_directory(tmp_path):
    with pytest.raises(ImageError) as info:
        list_images(tmp_path / "nope")
    assert str(info.value) == f"cannot read '{tmp_path / 'nope'}': not a directory"


def test_split_paths_disjoint_complete_stable(make_folder):
    names = [f"d{i % 3}/img{i:03d}.png" for i in range(60)]
    root = make_folder(names, size=(2, 2))
    paths = list_images(root)
    train = split_paths(paths, root, "train", 0.3)
    held = split_paths(paths, root, "heldout", 0.3)
    assert set(train).isdisjoint(held)
    assert sorted(train + held) == paths
    assert 0 < len(held) < len(paths) // 2 + 10  # roughly the fraction, not everything
    # Stable: independent of listing order and of repeated calls.
    assert split_paths(list(reversed(paths)), root, "heldout", 0.3) == list(reversed(held))
    assert split_paths(paths, root, "heldout", 0.3) == held
    # A larger holdout only moves files from train to heldout.
    assert set(held) <= set(split_paths(paths, root, "heldout", 0.6))


def test_split_all_or_zero_holdout(make_folder):
    root = make_folder(NAMES)
    paths = list_images(root)
    assert split_paths(paths, root, "all", 0.5) == paths
    assert split_paths(paths, root, "train", 0.0) == paths


# ---------------------------------------------------------------- crops


def test_load_rgb_pil(fixtures_dir):
    im = load_rgb_pil(fixtures_dir / "rgba.png")
    assert im.mode == "RGB" and im.size == (4, 1)
    assert im.getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ImageError, match="truncated JPEG file"):
        load_rgb_pil(fixtures_dir / "truncated.jpg")


def test_random_resized_crop_shape_and_determinism():
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8))
    a = random_resized_crop(im, 20, 16, np.random.default_rng(1))
    b = random_resized_crop(im, 20, 16, np.random.default_rng(1))
    assert a.shape == (3, 16, 16) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    # load_size below crop_size still yields a full crop.
    assert random_resized_crop(im, 8, 16, np.random.default_rng(1)).shape == (3, 16, 16)


def test_random_crop_folder_items(make_folder):
    root = make_folder(["a.png", "b.png", "c.png"], size=(40, 30))
    ds = RandomCropFolder(root, load_size=24, crop_size=16, seed=3)
    assert len(ds) == 3
    crop, skipped = ds[1]
    assert crop.shape == (3, 16, 16) and crop.dtype == torch.uint8 and skipped == 0
    assert torch.equal(ds[1][0], crop)  # same code, same crop
    assert torch.equal(RandomCropFolder(root, load_size=24, crop_size=16, seed=3)[1][0], crop)
    # A later sample of the same file (code + n * k) is a different random crop.
    assert not torch.equal(ds[1 + 3 * 5][0], crop)


def test_unreadable_files_are_skipped_and_counted(make_folder):
    root = make_folder(["a.png", "d.png"], size=(20, 20), bad=("b.jpg", "c.jpg"))
    ds = RandomCropFolder(root, load_size=16, crop_size=16)
    names = [p.name for p in ds.paths]
    assert names == ["a.png", "b.jpg", "c.jpg", "d.png"]
    assert ds[0][1] == 0
    assert ds[1][1] == 2  # b and c skipped, d used
    # 20x20 resized to 16x16 and cropped to 16x16 is the whole image: item 1 really is d.png.
    assert torch.equal(ds[1][0], ds[3][0])
    assert ds[2][1] == 1


def test_all_unreadable(make_folder):
    root = make_folder([], bad=("a.jpg", "b.jpg"))
    ds = RandomCropFolder(root, load_size=16, crop_size=16)
    with pytest.raises(ImageError) as info:
        ds[0]
    assert str(info.value) == f"cannot read '{root}': 2 consecutive files were unreadable"


def test_empty_folder(make_folder):
    root = make_folder([])
    with pytest.raises(ImageError) as info:
        RandomCropFolder(root)
    assert str(info.value) == f"cannot read '{root}': no image files found (split 'all')"


def test_split_in_dataset(make_folder):
    root = make_folder([f"i{i:02d}.png" for i in range(20)], size=(2, 2))
    train = RandomCropFolder(root, split="train", holdout=0.3)
    held = RandomCropFolder(root, split="heldout", holdout=0.3)
    assert len(train) + len(held) == 20 and set(train.paths).isdisjoint(held.paths)


# ---------------------------------------------------------------- sampler


def test_sampler_is_deterministic_and_covers_each_epoch():
    n = 7
    a = _take(InfiniteSampler(n, seed=1), 3 * n)
    assert a == _take(InfiniteSampler(n, seed=1), 3 * n)
    assert a != _take(InfiniteSampler(n, seed=2), 3 * n)
    for epoch in range(3):
        files = [c % n for c in a[epoch * n:(epoch + 1) * n]]
        assert sorted(files) == list(range(n))  # a permutation per epoch
    assert [c // n for c in a] == list(range(3 * n))  # the sample number is the global index


@pytest.mark.parametrize("start", [0, 1, 5, 7, 13])
def test_sampler_resume_continues_the_stream(start):
    full = _take(InfiniteSampler(5, seed=4, batch_size=2), 40)
    assert _take(InfiniteSampler(5, seed=4, start=start, batch_size=2), 40 - start) == full[start:]


def test_sampler_ranks_are_disjoint_and_interleave():
    n, bs, world = 10, 2, 2
    full = _take(InfiniteSampler(n, seed=0, batch_size=bs), 40)
    r0 = _take(InfiniteSampler(n, seed=0, rank=0, world=world, batch_size=bs), 20)
    r1 = _take(InfiniteSampler(n, seed=0, rank=1, world=world, batch_size=bs), 20)
    assert set(r0).isdisjoint(r1)
    assert sorted(r0 + r1) == sorted(full)
    assert r0[:bs] == full[:bs] and r1[:bs] == full[bs:2 * bs]
    # Within one epoch the two ranks see different files.
    assert set(c % n for c in r0[:4]).isdisjoint(c % n for c in r1[:4])


def test_sampler_rank_resume():
    kw = dict(seed=0, rank=1, world=2, batch_size=2)
    full = _take(InfiniteSampler(6, **kw), 12)
    # Resuming after 8 global samples: rank 1 has consumed blocks 1 and 3 (4 samples).
    assert _take(InfiniteSampler(6, start=8, **kw), 8) == full[4:]


def test_infinite_loader_batches(make_folder):
    root = make_folder(["a.png", "b.png", "c.png"], size=(20, 20), bad=("x.jpg",))
    ds = RandomCropFolder(root, load_size=16, crop_size=8, seed=0)
    batches = list(itertools.islice(infinite_loader(ds, batch_size=2, workers=0, seed=0), 4))
    for crops, skipped in batches:
        assert crops.shape == (2, 3, 8, 8) and crops.dtype == torch.uint8
        assert isinstance(skipped, int)
    assert sum(s for _, s in batches) == 2  # 8 samples = 2 epochs of 4 files: x.jpg drawn twice
    resumed = list(itertools.islice(infinite_loader(ds, batch_size=2, workers=0, seed=0, start=4), 2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches[2:], resumed))
