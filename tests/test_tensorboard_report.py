"""The shared TensorBoard writer of the probe and trap reports: every scalar, the text and the figure."""

from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlm_lightning.tensorboard_report import write_tensorboard_report


def test_write_report_logs_scalars_text_and_the_saved_figure(tmp_path):
    png = tmp_path / "figure.png"
    figure = Figure(figsize=(2, 1))
    figure.subplots().plot([0, 1], [1, 0])
    figure.savefig(png, dpi=50)
    write_tensorboard_report(tmp_path / "tb", "trap", [("trap/joint/validity", 0.5, 2), ("trap/joint/validity", 0.25, 4)],
                 "# report", png)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("trap/joint/validity")] == [(2, 0.5), (4, 0.25)]
    assert events.Tags()["images"] == ["trap/figure"]
    [image] = events.Images("trap/figure")
    assert (image.width, image.height) == (100, 50)
    assert "trap/report/text_summary" in events.Tags()["tensors"]
