from optilab.labsim.cli import main

raise SystemExit(main())
