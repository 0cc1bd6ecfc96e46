from bitscout.cli import main
import sys
sys.exit(main())
