import sys

from pruning_core.cli import main

sys.exit(main())
