"""Generated stores made cheaper to run, for tests of what is not the detector."""


def with_detector(store_text: str, setting: str) -> str:
    """A store file's text with a ``[detector]`` table holding ``setting`` (one TOML line)."""
    return store_text.replace("[[zones]]", f"[detector]\n{setting}\n\n[[zones]]", 1)


def cheaper_detector(store_text: str) -> str:
    """A store file's text with a small fixed detector input (``[detector] input = [192,
    320]``): for tests of the service and the run, not of the detector. The rule that sizes
    each camera's input from its farthest person gives these 640x360 cameras a larger one: a
    run of the service's test store took 79 s with ``person_pixels = 50`` and 44 s with this
    input (one 2-core VM, back to back), and found the same visitors."""
    return with_detector(store_text, "input = [192, 320]")
