import sys

from knative.cli import main

sys.exit(main())
