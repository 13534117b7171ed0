from labsim.cli import main

raise SystemExit(main())
