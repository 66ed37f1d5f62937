"""The bundled sample says it is the sample wherever it is shown."""

import reginsight as ri
from reginsight.inventory._sample import SAMPLE_DIR, is_sample


def test_the_sample_is_labelled_and_a_fresh_copy_each_time():
    inv = ri.sample()
    assert inv.label == "the bundled sample"
    assert repr(inv).startswith("<Inventory the bundled sample (")
    assert "Inventory of the bundled sample" in inv._repr_html_()
    assert ri.sample() is not inv and len(inv.tags) == 42


def test_a_loaded_inventory_has_no_label():
    inv = ri.Inventory.load(SAMPLE_DIR)
    assert inv.label is None and repr(inv).startswith(f"<Inventory {inv.registry} at")


def test_the_sample_folder_is_known_through_its_data_link(tmp_path):
    assert is_sample(SAMPLE_DIR) and is_sample(SAMPLE_DIR.parent.parent / "data" / "sample")
    assert not is_sample(tmp_path) and not is_sample(tmp_path / "missing")
