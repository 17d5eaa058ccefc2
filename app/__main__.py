import sys

from app.server.entry import main

sys.exit(main())
