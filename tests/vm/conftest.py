"""The VM tests run only when asked for (`pytest -m vm`, `make test-vm`): they boot a guest
under software emulation, which takes minutes."""

collect_ignore = ["guest"]             # run inside the guest, by tests/vm/guest/run.py


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots a QEMU guest with a virtual IOMMU (tests/vm)")


def pytest_collection_modifyitems(config, items):
    if "vm" in (config.option.markexpr or ""):
        return
    skipped = [item for item in items if item.get_closest_marker("vm")]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if not item.get_closest_marker("vm")]
