from optilab.demo.cli import main

raise SystemExit(main())
