import sys

from wordstream.client.cli import main

sys.exit(main())
