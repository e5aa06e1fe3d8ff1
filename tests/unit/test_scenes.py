"""Synthetic scenes: deterministic, one object at a time, truth consistent with the pixels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.mounts import MountSpec, SimulatorSettings, parse_mount
from simulator.scenes import SyntheticScene


def object_columns(scene: SyntheticScene, t_s: float) -> np.ndarray:
    """x indices of the columns where the frame differs from the empty background."""
    diff = np.any(scene.render(t_s) != scene.render(0.0), axis=2)
    return np.flatnonzero(diff.any(axis=0))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), crossings=st.integers(0, 8))
def test_truth_is_deterministic_by_seed(seed: int, crossings: int) -> None:
    a = SyntheticScene(seed=seed, crossings=crossings)
    b = SyntheticScene(seed=seed, crossings=crossings)
    assert a.truth() == b.truth()
    assert a.duration_s == b.duration_s
    assert len(a.truth()) == crossings
    assert [c.t_s for c in a.truth()] == sorted(c.t_s for c in a.truth())


def test_different_seeds_give_different_scripts() -> None:
    assert (
        SyntheticScene(seed=1, crossings=4).truth() != SyntheticScene(seed=2, crossings=4).truth()
    )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), crossings=st.integers(1, 10), warmup_s=st.floats(0, 5))
def test_objects_never_share_the_screen(seed: int, crossings: int, warmup_s: float) -> None:
    scene = SyntheticScene(seed=seed, crossings=crossings, warmup_s=warmup_s)
    objects = scene.objects
    assert objects[0].enter_s == pytest.approx(warmup_s)
    for earlier, later in itertools.pairwise(objects):
        assert earlier.exit_s < later.enter_s
    assert scene.duration_s == objects[-1].exit_s
    for obj in objects:
        assert 40 <= obj.width_px <= 60 and obj.height_px <= 90
        assert obj.top_px >= 0 and obj.top_px + obj.height_px <= scene.height
        assert obj.enter_s < obj.crossing_s(scene.width) < obj.exit_s


def test_render_is_deterministic_and_shaped() -> None:
    scene = SyntheticScene(seed=3, crossings=3)
    for t_s in (0.0, 1.0, scene.truth()[0].t_s, scene.duration_s + 5):
        first = scene.render(t_s)
        assert first.shape == (360, 640, 3) and first.dtype == np.uint8
        assert np.array_equal(first, SyntheticScene(seed=3, crossings=3).render(t_s))
        assert np.array_equal(first, scene.render(t_s))


def test_background_is_static_outside_objects() -> None:
    scene = SyntheticScene(seed=9, crossings=2, warmup_s=2.0)
    assert np.array_equal(scene.render(0.0), scene.render(1.9))
    assert np.array_equal(scene.render(0.0), scene.render(scene.duration_s + 0.01))


@pytest.mark.parametrize("seed", [0, 1, 7, 42, 1234])
def test_crossing_times_match_rendered_positions(seed: int) -> None:
    scene = SyntheticScene(seed=seed, crossings=5)
    for crossing, obj in zip(scene.truth(), scene.objects, strict=True):
        columns = object_columns(scene, crossing.t_s)
        assert len(columns) == obj.width_px
        centre = (columns[0] + columns[-1] + 1) / 2
        assert abs(centre - scene.width / 2) <= 0.5
        before = object_columns(scene, crossing.t_s - 0.2)
        after = object_columns(scene, crossing.t_s + 0.2)
        centre_before = (before[0] + before[-1] + 1) / 2
        centre_after = (after[0] + after[-1] + 1) / 2
        if crossing.direction == "left_to_right":
            assert centre_before < scene.width / 2 < centre_after
        else:
            assert centre_before > scene.width / 2 > centre_after


def test_objects_are_fully_off_frame_at_entry_and_exit() -> None:
    scene = SyntheticScene(seed=5, crossings=4)
    for obj in scene.objects:
        assert len(object_columns(scene, obj.enter_s)) == 0
        assert len(object_columns(scene, obj.exit_s)) == 0
        assert len(object_columns(scene, (obj.enter_s + obj.exit_s) / 2)) == obj.width_px


def test_loop_repeats_the_script() -> None:
    scene = SyntheticScene(seed=11, crossings=2, loop=True)
    period = scene.duration_s
    # Off the crossing instant: there the left edge sits on a half pixel, where float error in
    # t % period may round either way.
    t_s = scene.truth()[0].t_s + 0.0137
    assert np.array_equal(scene.render(t_s), scene.render(t_s + period))
    repeated = scene.truth(until_s=2 * period + 0.001)
    assert len(repeated) == 4
    assert [c.object_id for c in repeated] == [0, 1, 2, 3]
    assert repeated[2].t_s == pytest.approx(scene.truth()[0].t_s + period)


def test_without_loop_the_scene_stays_static_after_the_script() -> None:
    scene = SyntheticScene(seed=11, crossings=2)
    assert scene.truth(until_s=10 * scene.duration_s) == scene.truth()
    assert len(object_columns(scene, scene.duration_s + scene.truth()[0].t_s)) == 0


def test_mount_spec_builds_the_same_scene() -> None:
    spec = parse_mount("cam1:synthetic:seed=7,crossings=6,fps=25,warmup_s=1.5")
    assert spec == MountSpec(
        name="cam1", kind="synthetic", seed=7, crossings=6, fps=25, warmup_s=1.5
    )
    assert spec.scene().truth() == SyntheticScene(seed=7, crossings=6, warmup_s=1.5).truth()


def test_parse_mount_file_and_errors() -> None:
    spec = parse_mount("clip:file:path=/videos/a,b.mp4,loop=true")
    assert spec.kind == "file" and str(spec.path) == "/videos/a,b.mp4" and spec.loop
    for bad in (
        "cam1",
        "cam1:nope",
        "cam1:synthetic:seed",
        "cam1:file",
        "c:synthetic:width=641",
        "c:synthetic:colour=red",
        "c:synthetic:seed=1,seed=2",
        "bad name:synthetic",
        "c:file:path=/x.mp4,crossings=3",
    ):
        with pytest.raises(ValueError):
            parse_mount(bad)
    with pytest.raises(ValueError, match="duplicate"):
        SimulatorSettings(mounts=(parse_mount("a:synthetic"), parse_mount("a:synthetic")))
