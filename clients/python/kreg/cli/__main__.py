import sys

from kreg.cli import main

sys.exit(main())
