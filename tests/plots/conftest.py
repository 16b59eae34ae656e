"""The prediction tests' fixtures (a tiny checkpoint, a synthetic video, the astronaut)
for the ``mgrr-plot`` tests, which draw what ``mgrr-predict`` writes."""
from predict.conftest import astronaut, checkpoint, one_thread, two_face_video  # noqa: F401
