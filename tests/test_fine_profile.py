"""The `fine` profile (issue: evidence): the synthetic method on a phantom grid where segmental clots are 3+ px wide.
It is for GPUs; here its phantom is drawn once and every stage runs a step at its real shapes (`bench scale`)."""
import json

from labelup.cli import main
from labelup.core import get_profile


def test_fine_grid_resolves_segmental_arteries(tmp_path):
    from labelup.dicom import read_series
    from labelup.phantom import make_phantom_dataset
    p = get_profile("fine")
    make_phantom_dataset(tmp_path / "d", 1, seed=3, shape=p.data.phantom_shape, positive_fraction=1.0)
    vol, geom = read_series(next(next((tmp_path / "d" / "train").iterdir()).iterdir()))
    dz, dy, dx = geom["spacing"]
    assert vol.shape == tuple(p.data.phantom_shape) and max(dy, dx) <= 1.4 and dz <= 1.6, geom["spacing"]
    assert 3.0 / dx >= 2.1 and p.data.image_size == vol.shape[-1]     # a 3 mm segmental artery spans 2+ px, no resampling


def test_fine_profile_runs_every_stage_at_its_shapes(tmp_path):
    js = tmp_path / "fine.json"
    assert main(["bench", "scale", "--profile", "fine", "--json", str(js), "--study-shape", "8", "256", "256",
                 "--steps", "1", "--quiet"]) == 0
    shapes = {r["stage"]: r["shape"] for r in json.loads(js.read_text())["stages"]}
    assert shapes["classifier training step"][1:] == [7, 256, 256]
    assert shapes["student training step"][2:] == [96, 96, 48]
    assert shapes["IG on one slab"][1:] == [7, 256, 256]
