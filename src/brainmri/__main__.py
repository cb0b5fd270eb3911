import sys

from brainmri.cli.main import main

sys.exit(main())
