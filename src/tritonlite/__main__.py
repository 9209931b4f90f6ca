import sys

from tritonlite.cli import main

sys.exit(main())
