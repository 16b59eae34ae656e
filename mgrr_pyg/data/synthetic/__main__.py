"""``python -m mgrr_pyg.data.synthetic`` = ``mgrr-synth``."""
from .cli import main

raise SystemExit(main())
