"""`python -m devtensor bench|info`: the same as the `devtensor` console script."""
import sys

from .cli import main

sys.exit(main())
