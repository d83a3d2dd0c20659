import torch

from adain.base.image import load_image, resize_exact


def test_run_shapes_default_size(pipeline, samples):
    r = pipeline.run(samples / "content" / "kodim04.jpg", samples / "geometry" / "munch_the-scream.jpg",
                     samples / "texture" / "vangogh_the-starry-night.jpg", size=128, scales=[128])
    g = load_image(samples / "geometry" / "munch_the-scream.jpg")
    assert max(r.image.shape[-2:]) == 128
    assert abs(r.image.shape[-1] / r.image.shape[-2] - g.shape[-1] / g.shape[-2]) < 0.02
    assert r.warped is not None and r.field is not None
    assert r.warped.shape == r.image.shape


def test_no_texture_gives_the_warped_content(pipeline, samples):
    r = pipeline.run(samples / "content" / "kodim04.jpg", samples / "geometry" / "munch_the-scream.jpg", None, size=96)
    assert torch.equal(r.image, r.warped)


def test_strength_zero_gives_plain_stylized_content(pipeline, samples):
    c = samples / "content" / "kodim23.jpg"
    t = samples / "texture" / "kandinsky_composition-vii.jpg"
    g = samples / "geometry" / "juan-gris_portrait-of-pablo-picasso.jpg"
    warped_off = pipeline.run(c, g, t, size=96, scales=[96], strength=0.0)
    # strength 0: the warped image is the content resized to the output frame
    expected = resize_exact(load_image(c, working_size=96), tuple(warped_off.image.shape[-2:]))  # decoded as the run does
    assert torch.allclose(warped_off.warped, expected, atol=1e-6)
    with_warp = pipeline.run(c, g, t, size=96, scales=[96], strength=1.0)
    assert (with_warp.image - warped_off.image).abs().mean() > 0.01


def test_texture_only_keeps_content_aspect(pipeline, samples):
    r = pipeline.run(samples / "content" / "kodim23.jpg", None, samples / "texture" / "monet_water-lilies-1919.jpg",
                     size=96, scales=[96])
    assert r.image.shape[-2:] == (96, 96) and r.field is None and r.warped is None


def test_alpha_zero_differs_from_alpha_one(pipeline, samples):
    c, t = samples / "content" / "kodim23.jpg", samples / "texture" / "vangogh_the-starry-night.jpg"
    a0 = pipeline.run(c, None, t, size=64, scales=[64], alpha=0.0).image
    a1 = pipeline.run(c, None, t, size=64, scales=[64], alpha=1.0).image
    content = resize_exact(load_image(c), (64, 64))
    assert (a0 - content).abs().mean() < (a1 - content).abs().mean()


def test_batch_reports_bad_file_and_continues(pipeline, samples, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    items = [samples / "content" / "kodim23.jpg", bad, samples / "content" / "kodim04.jpg"]
    out = list(pipeline.run_batch(items, samples / "geometry" / "munch_the-scream.jpg", None, size=64))
    assert [type(r).__name__ for _, r in out] == ["PipelineResult", "ImageError", "PipelineResult"]
    assert "bad.jpg" in str(out[1][1])


def test_sheet_has_all_panels(pipeline, samples):
    r = pipeline.run(samples / "content" / "kodim23.jpg", samples / "geometry" / "munch_the-scream.jpg",
                     samples / "texture" / "vangogh_the-starry-night.jpg", size=64, scales=[64])
    sheet = r.sheet(height=64)
    assert sheet.height == 64 + 20 and sheet.width > 5 * 40


def test_each_image_is_checked_once_per_run(pipeline, monkeypatch):
    """The pipeline checks its inputs at its boundary; the stages get checked tensors and do not re-check."""
    import adain.base.image

    names: list[str] = []
    real = adain.base.image.check_image
    monkeypatch.setattr(adain.base.image, "check_image", lambda x, name, **k: (names.append(name), real(x, name, **k)))
    g = torch.Generator().manual_seed(0)
    content, geometry, texture = (torch.rand(1, 3, 40 + 8 * i, 48, generator=g) for i in range(3))
    pipeline.run(content, geometry, [texture], size=32, scales=[32])
    assert sorted(names) == ["content", "geometry", "texture[0]"]


def test_output_frame_comes_from_the_stage_that_owns_it(pipeline):
    from adain.styler import Styler
    from warpstyle.geometry.warper import Warper

    g = torch.Generator().manual_seed(1)
    content, geometry = torch.rand(1, 3, 30, 50, generator=g), torch.rand(1, 3, 45, 20, generator=g)
    warped = pipeline.run(content, geometry, None, size=40)
    assert tuple(warped.image.shape[-2:]) == Warper.output_size((45, 20), 40) == (40, 18)
    plain = pipeline.run(content, None, None, size=40)
    assert tuple(plain.image.shape[-2:]) == Styler.output_size((30, 50), 40) == (24, 40)


def test_cache_encodes_a_repeated_geometry_and_texture_once(pipeline, samples, monkeypatch):
    g_path, t_path = samples / "geometry" / "munch_the-scream.jpg", samples / "texture" / "vangogh_the-starry-night.jpg"
    other_path = samples / "geometry" / "juan-gris_portrait-of-pablo-picasso.jpg"
    calls: dict = {"encode": [], "texture": 0}
    encode, encode_styles = pipeline.warper._pool4, pipeline.styler.encode_styles

    def counting_encode(image, bf16):
        # each geometry the cache has not seen (matching's fallback), and a content where matching falls back
        calls["encode"].append(tuple(image.shape[-2:]))
        return encode(image, bf16)

    def counting_encode_styles(styles, **kw):
        calls["texture"] += 1
        return encode_styles(styles, **kw)

    monkeypatch.setattr(pipeline.warper, "_pool4", counting_encode)
    monkeypatch.setattr(pipeline.styler, "encode_styles", counting_encode_styles)
    g_hw, other_hw = (tuple(load_image(p, working_size=64).shape[-2:]) for p in (g_path, other_path))
    assert g_hw != other_hw
    cache: dict = {}
    args = dict(size=64, scales=[64])
    first = pipeline.run(samples / "content" / "kodim04.jpg", g_path, t_path, cache=cache, **args)
    # Same pixels from another source (a tensor, not the path) are the same image to the cache.
    second = pipeline.run(samples / "content" / "kodim23.jpg", load_image(g_path, working_size=64), t_path, cache=cache, **args)
    assert calls["encode"].count(g_hw) == 1 and calls["texture"] == 1  # one geometry, one texture
    other = pipeline.run(samples / "content" / "kodim23.jpg", other_path, t_path, cache=cache, **args)
    assert calls["encode"].count(other_hw) == 1 and calls["encode"].count(g_hw) == 1 and calls["texture"] == 1
    assert not torch.equal(other.image, second.image)
    uncached = pipeline.run(samples / "content" / "kodim23.jpg", g_path, t_path, **args)
    assert torch.equal(second.image, uncached.image)
    assert not torch.equal(first.image, second.image)
