import sys

from experiments.sweeps import main

sys.exit(main())
