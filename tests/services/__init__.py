def cheaper_detector(store_text: str) -> str:
    """A store file's text with the cheaper detector input rule (``[detector] person_pixels =
    50``): for tests of the service, not of the detector, it halves detection's time."""
    return store_text.replace("[[zones]]", "[detector]\nperson_pixels = 50\n\n[[zones]]", 1)
