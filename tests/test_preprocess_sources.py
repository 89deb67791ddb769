"""Image-sequence and in-memory sources: the same face clip as a folder of frames, a list of files
in several formats, and a NumPy array must give the same aligned clip; broken inputs name the file."""

import os

import cv2
import numpy as np
import pytest
import skimage.data

from fer_jax.errors import InputError
from fer_jax.preprocess import align, clip, sources

NUM, SIZE = 12, 160
CONFIG = clip.ClipConfig(need_audio=False)


def _moving_face_frames(num=NUM):
    """(num, SIZE, SIZE, 3) uint8 RGB: a window sliding 2 px right and down per frame over the
    astronaut's face, 4% brighter each frame. Alignment undoes the sliding exactly, so the
    brightness is what tells the frames apart once aligned."""
    image = skimage.data.astronaut().astype(np.float64)
    return np.stack(
        [
            np.clip(image[22 + 2 * i : 22 + 2 * i + SIZE, 124 + 2 * i : 124 + 2 * i + SIZE] * (0.6 + 0.04 * i), 0, 255)
            for i in range(num)
        ]
    ).astype(np.uint8)


def _write_images(folder, frames, names, ext=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in zip(names, frames):
        path = folder / f"{name}{ext}"
        assert cv2.imwrite(str(path), np.ascontiguousarray(frame[..., ::-1]))  # OpenCV writes BGR
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def frames():
    return _moving_face_frames()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, frames):
    """img0.png .. img11.png: plain string order would put img10 and img11 before img2."""
    folder = tmp_path_factory.mktemp("seq") / "S005_001"
    _write_images(folder, frames, [f"img{i}" for i in range(NUM)])
    (folder / "S005_001_emotion.txt").write_text("3.0\n")  # label files sit beside frames in CK+
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / "sub").mkdir()
    return folder


def test_natural_sort():
    names = ["img10.png", "img2.png", "IMG1.png", "img1.png", "frame_009.jpg", "frame_010.jpg", "a"]
    assert sorted(names, key=sources.natural_key) == [
        "a", "frame_009.jpg", "frame_010.jpg", "IMG1.png", "img1.png", "img2.png", "img10.png"
    ]  # fmt: skip


def test_folder_lists_images_in_natural_order(folder):
    seq = sources.ImageSequence.from_folder(folder)
    assert [os.path.basename(p) for p in seq.paths] == [f"img{i}.png" for i in range(NUM)]
    assert seq.count() == NUM and seq.name == str(folder)


def test_folder_list_and_array_give_the_same_clip(folder, frames):
    """PNG is lossless, so all three sources feed identical pixels and the clips must be identical;
    a plain string sort of the folder (img10 before img2) would give other frames."""
    from_folder = clip.process_clip(folder, CONFIG)
    from_list = clip.process_clip([str(folder / f"img{i}.png") for i in range(NUM)], CONFIG)
    from_array = clip.process_frames(frames, CONFIG, name="astronaut")
    assert set(from_folder) == {"frames", "landmarks", "num_source_frames", "face_found_fraction"}
    for other in (from_list, from_array):
        np.testing.assert_array_equal(from_folder["frames"], other["frames"])
        np.testing.assert_array_equal(from_folder["landmarks"], other["landmarks"])
    assert from_folder["num_source_frames"] == NUM and from_folder["face_found_fraction"] == 1.0
    brightness = from_folder["frames"].mean(axis=(1, 2, 3))
    assert (np.diff(brightness) > 0).all()  # in time order


@pytest.mark.parametrize("ext, tolerance", [(".png", 0), (".bmp", 0), (".tiff", 0), (".jpg", 6)])
def test_image_formats_decode_to_rgb(tmp_path, frames, ext, tolerance):
    (path,) = _write_images(tmp_path, frames[:1], ["f"], ext)
    image = sources.read_image(path)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    error = np.abs(image.astype(float) - frames[0]).mean()
    assert error <= tolerance  # JPEG is lossy: a few grey levels on average
    assert np.abs(image[..., ::-1].astype(float) - frames[0]).mean() > 10  # but not BGR


def test_gray_and_16_bit_images_become_rgb_uint8(tmp_path, frames):
    gray = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    cv2.imwrite(str(tmp_path / "g16.png"), gray.astype(np.uint16) * 257)  # 16-bit: 8-bit value * 257
    for name in ("g.png", "g16.png"):
        image = sources.read_image(tmp_path / name)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, np.repeat(gray[..., None], 3, axis=2))


def test_single_image_is_a_clip_of_one_frame(frames):
    example = clip.process_frames(frames[:1], CONFIG)
    assert example["frames"].shape == (8, 64, 64, 1) and example["num_source_frames"] == 1
    np.testing.assert_array_equal(example["frames"], np.broadcast_to(example["frames"][:1], example["frames"].shape))
    left, right = align.eye_centers(example["landmarks"][0])
    want_left, want_right = align.canonical_eye_positions(64)
    np.testing.assert_allclose(left, want_left, atol=0.01)
    np.testing.assert_allclose(right, want_right, atol=0.01)
    gray_input = clip.process_frames(cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)[None], CONFIG)  # (1, H, W)
    assert gray_input["frames"].shape == (8, 64, 64, 1)


def test_undecodable_image_names_the_file(tmp_path, frames):
    folder = tmp_path / "clip"
    _write_images(folder, frames[:5], [f"{i:03d}" for i in range(5)])
    bad = folder / "002.png"
    bad.write_bytes(b"not a png at all" * 10)
    with pytest.raises(InputError) as caught:
        clip.process_clip(folder, CONFIG)
    assert caught.value.reason == "undecodable" and caught.value.path == str(bad) and "002.png" in str(caught.value)
    bad.write_bytes(b"")
    with pytest.raises(InputError) as caught:
        clip.process_clip(folder, CONFIG)
    assert caught.value.reason == "zero_byte" and caught.value.path == str(bad)
    with pytest.raises(InputError) as caught:
        clip.process_clip([folder / "000.png", folder / "gone.png"], clip.ClipConfig(num_frames=2, need_audio=False))
    assert caught.value.reason == "missing" and "gone.png" in str(caught.value)


def test_image_sequences_have_no_audio(folder, frames):
    for run in (lambda: clip.process_clip(folder), lambda: clip.process_frames(frames, name="csv:row 3")):
        with pytest.raises(InputError) as caught:
            run()  # need_audio=True by default
        assert caught.value.reason == "no_audio"
    assert "csv:row 3" in str(caught.value)


def test_empty_inputs(tmp_path):
    (tmp_path / "readme.txt").write_text("no frames here")
    for source in (tmp_path, []):
        with pytest.raises(InputError) as caught:
            clip.process_clip(source, CONFIG)
        assert caught.value.reason == "no_frames"
    with pytest.raises(InputError) as caught:
        clip.process_frames(np.zeros((0, 48, 48, 3), np.uint8), CONFIG, name="empty")
    assert caught.value.reason == "no_frames"
    with pytest.raises(ValueError):
        clip.process_frames(np.zeros((2, 48, 48, 3), np.float32), CONFIG)
    with pytest.raises(TypeError):
        clip.process_clip(np.zeros((2, 48, 48, 3), np.uint8), CONFIG)


def test_image_without_a_face(tmp_path):
    _write_images(tmp_path, np.full((3, 96, 96, 3), 128, np.uint8), ["a", "b", "c"])
    with pytest.raises(InputError) as caught:
        clip.process_clip(tmp_path, CONFIG)
    assert caught.value.reason == "no_face" and caught.value.path == str(tmp_path)


def test_zipped_images_give_the_folders_clip_and_name_a_damaged_member(tmp_path, folder):
    """The same PNGs zipped (BP4D+'s layout) give the same aligned clip; an empty member is
    zero_byte, a member whose bytes were damaged in the archive (CRC mismatch) truncated."""
    import zipfile

    members = [f"S005/T1/img{i}.png" for i in range(NUM)]
    archive = tmp_path / "S005.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i, member in enumerate(members):
            z.write(folder / f"img{i}.png", member)
    zipped = clip.process_clip(sources.ZipImages(archive, members, name="S005/T1"), CONFIG)
    np.testing.assert_array_equal(zipped["frames"], clip.process_clip(folder, CONFIG)["frames"])

    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("S005/T1/empty.png", b"")
    with pytest.raises(InputError, match="0 bytes") as error:
        sources.ZipImages(archive, ["S005/T1/empty.png"]).frames_at([0])
    assert error.value.reason == "zero_byte" and error.value.path == f"{archive}:S005/T1/empty.png"

    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.png", b"x" * 64)
    data = bytearray(damaged.read_bytes())
    data[data.index(b"x" * 64)] = ord("y")  # the stored bytes no longer match their CRC
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged") as error:
        sources.ZipImages(damaged, ["a.png"], name="clip").frames_at([0])
    assert error.value.reason == "truncated" and error.value.path == "clip"
